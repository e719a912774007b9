"""Transactions: sign with locally tracked nonces (resynced on error), broadcast, follow blocks to
find where an extrinsic landed, and turn an `ExtrinsicFailed` into a `ChainError` named after
the pallet's error. Also the argument builders of the market's own calls."""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from substrateinterface import Keypair, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException

from market import SignedCancel, SignedOrder, public_key, ss58, to_chain_name

from .connection import PALLET, Event
from .errors import ChainError, request_error_text
from .events import read_compact
from .reads import MarketReads

log = logging.getLogger("wattchain.chain")


@dataclass
class PendingTx:
    """A signed extrinsic handed to the node, not yet seen in a block."""

    tx_hash: str
    signer: str
    nonce: int
    call: str  # "Pallet.function"
    data: str  # 0x-hex of the signed extrinsic, so it can be broadcast again unchanged
    best_at_submit: int
    mortal_until: int  # last block number at which it can be included


@dataclass
class Receipt:
    tx_hash: str
    block_hash: str
    block_number: int
    extrinsic_index: int
    success: bool
    error: ChainError | None
    events: list[Event]
    finalized: bool = False
    call: str = ""
    # False from a watcher that does not read events (`watcher(events=False)`): then only where
    # the tx landed is known, not `success`, `error` or `events`; `Chain.with_events` reads them.
    events_read: bool = True

    def raise_for_error(self) -> Receipt:
        if self.error is not None:
            raise self.error
        return self

    def find(self, pallet: str, name: str) -> list[Event]:
        return [e for e in self.events if e.pallet == pallet and e.name == name]


# --------------------------------------------------------------------------------------------
# Nonces: one tracker per (chain, account) in this process, shared by every Chain object.


class _NonceTracker:
    def __init__(self):
        self.lock = threading.RLock()
        self.next: int | None = None


_NONCES: dict[tuple[str, str], _NonceTracker] = {}
_NONCES_LOCK = threading.Lock()


def _tracker(genesis: str, address: str) -> _NonceTracker:
    with _NONCES_LOCK:
        return _NONCES.setdefault((genesis, address), _NonceTracker())


def _forget_nonces(genesis: str) -> None:
    with _NONCES_LOCK:
        for (g, _), tracker in _NONCES.items():
            if g == genesis:
                tracker.next = None


# Pool answers that mean "your nonce is wrong", not "your transaction is wrong".
_NONCE_PROBLEMS = ("stale", "outdated", "priority is too low", "1014")


def _is_nonce_problem(detail: str) -> bool:
    text = detail.lower()
    return any(p in text for p in _NONCE_PROBLEMS)


class Chain(MarketReads):
    """A connection to a WattChain node: reads and transactions. Not thread-safe: give each
    thread its own Chain (they share nonce trackers, so two threads may sign with the same
    account)."""

    def _reconnected(self, genesis: str) -> None:
        _forget_nonces(genesis)
        # A node met again may run another runtime: call indices are read anew.
        self._call_indices: dict[tuple[str, str], bytes] = {}

    # -- extrinsics -------------------------------------------------------------------------
    def sign(
        self,
        signer: Keypair,
        function: str,
        params: dict | bytes,
        *,
        module: str = PALLET,
        nonce: int | None = None,
        era_period: int = 64,
    ) -> PendingTx:
        """Compose and sign a call with the given nonce (default: the next tracked one). The
        result is not submitted yet; `broadcast` it (as many times as needed). `params` is a
        dict for substrate-interface to encode, or the call's arguments already SCALE-encoded
        (`relayed_orders_args`, `relayed_cancels_args`)."""

        def run(s: SubstrateInterface) -> tuple[bytes, int]:
            best = int(s.rpc_request("chain_getHeader", [])["result"]["number"], 16)
            if isinstance(params, bytes):
                call = self._call_index(s, module, function) + params
                return _sign_encoded(s, signer, call, nonce, era_period), best
            composed = s.compose_call(
                call_module=module,
                call_function=function,
                call_params=_encodable(s, module, function, params),
            )
            extrinsic = s.create_signed_extrinsic(
                call=composed, keypair=signer, nonce=nonce, era={"period": era_period}
            )
            return bytes(extrinsic.data.data), best

        data, best = self._call(run)
        return PendingTx(
            tx_hash="0x" + hashlib.blake2b(data, digest_size=32).hexdigest(),
            signer=signer.ss58_address,
            nonce=nonce,
            call=f"{module}.{function}",
            data="0x" + data.hex(),
            best_at_submit=best,
            mortal_until=best + era_period,
        )

    def _call_index(self, s: SubstrateInterface, module: str, function: str) -> bytes:
        """The 2 bytes (pallet, call) that start the call's encoding, from the metadata."""
        key = (module, function)
        index = self._call_indices.get(key)
        if index is None:
            pallet = s.get_metadata_module(module).value["index"]
            call = s.get_metadata_call_function(module, function).value["index"]
            index = self._call_indices[key] = bytes([pallet, call])
        return index

    def broadcast(self, tx: PendingTx) -> PendingTx:
        """Hand a signed extrinsic to the node. Sending the same bytes again is harmless: the
        pool knows them already, or they were included (and cannot be included twice)."""
        try:
            self._call(lambda s: s.rpc_request("author_submitExtrinsic", [tx.data]))
        except SubstrateRequestException as exc:
            detail = request_error_text(exc)
            if "already imported" in detail.lower() or "1013" in detail:
                return tx
            raise ChainError("InvalidTransaction", detail, tx_hash=tx.tx_hash) from None
        return tx

    def submit(
        self,
        signer: Keypair,
        function: str,
        params: dict | bytes,
        *,
        module: str = PALLET,
        wait: str | None = "inclusion",
        timeout_s: float = 60.0,
        era_period: int = 64,
    ) -> Receipt | PendingTx:
        """Sign with the account's next nonce and submit. wait: None (return the PendingTx),
        "inclusion" or "finality" (return the Receipt; raise ChainError if it failed)."""
        tx = self.submit_nowait(signer, function, params, module=module, era_period=era_period)
        if wait is None:
            return tx
        return self.wait([tx], finality=(wait == "finality"), timeout_s=timeout_s)[
            0
        ].raise_for_error()

    def submit_nowait(
        self,
        signer: Keypair,
        function: str,
        params: dict | bytes,
        *,
        module: str = PALLET,
        era_period: int = 64,
        before_broadcast: Callable[[PendingTx], None] | None = None,
    ) -> PendingTx:
        """Sign with the tracked nonce and broadcast; on a nonce problem resync and retry (at
        most twice). `before_broadcast(tx)` runs after signing and before the node sees the tx,
        e.g. to log its bytes durably so a restart can broadcast the very same extrinsic."""
        log_first = None if before_broadcast is None else (lambda txs: before_broadcast(txs[0]))
        return self.submit_all_nowait(
            signer,
            [(function, params)],
            module=module,
            era_period=era_period,
            before_broadcast=log_first,
        )[0]

    def submit_all_nowait(
        self,
        signer: Keypair,
        calls: Sequence[tuple[str, dict | bytes]],
        *,
        module: str = PALLET,
        era_period: int = 64,
        before_broadcast: Callable[[list[PendingTx]], None] | None = None,
    ) -> list[PendingTx]:
        """`submit_nowait` for calls that go together, in order (a clearing's registration and
        pages): all signed with consecutive nonces, all handed to `before_broadcast` (to log
        them) before the node sees any, then broadcast in order. So a crash leaves all of them
        logged or none broadcast. A refusal of the first on a nonce problem resyncs and signs
        them again (at most twice); a refusal of a later one raises, with those before it out."""
        tracker = _tracker(self.genesis_hash_hex, signer.ss58_address)
        with tracker.lock:
            for attempt in range(3):
                if tracker.next is None:
                    tracker.next = self.account_next_nonce(signer.ss58_address)
                first = tracker.next
                txs = [
                    self.sign(
                        signer,
                        function,
                        params,
                        module=module,
                        nonce=first + i,
                        era_period=era_period,
                    )
                    for i, (function, params) in enumerate(calls)
                ]
                if before_broadcast is not None:
                    before_broadcast(txs)
                for i, tx in enumerate(txs):
                    try:
                        self.broadcast(tx)
                    except ChainError as exc:
                        tracker.next = None  # after any refusal the pool's view is the safe one
                        if i == 0 and _is_nonce_problem(exc.detail) and attempt < 2:
                            log.info(
                                "nonce %d of %s refused (%s); resyncing",
                                first,
                                signer.ss58_address,
                                exc.detail,
                            )
                            break  # none is out: sign them all again
                        raise
                else:
                    # A reconnect during sign/broadcast forgets nonces; then the pool decides
                    # next time.
                    if tracker.next == first:
                        tracker.next = first + len(txs)
                    return txs
        raise AssertionError("unreachable")

    def resync_nonce(self, account: str) -> None:
        _tracker(self.genesis_hash_hex, ss58(account)).next = None

    def watcher(self, *, finality: bool = False, events: bool = True) -> ReceiptWatcher:
        return ReceiptWatcher(self, finality=finality, events=events)

    def with_events(self, receipt: Receipt, tx: PendingTx) -> Receipt:
        """The receipt of a watcher that did not read events, with them (and so its outcome)."""
        events = self.events(receipt.block_hash)
        full = self._receipt(
            tx, receipt.block_hash, receipt.block_number, receipt.extrinsic_index, events
        )
        full.finalized = receipt.finalized
        return full

    def wait(
        self,
        txs: Sequence[PendingTx],
        *,
        finality: bool = False,
        timeout_s: float = 60.0,
        poll_s: float = 0.25,
    ) -> list[Receipt]:
        """Follow the best chain until every tx is in a block (and, with finality, that block is
        finalized). Receipts come back in the order of `txs`; a failed dispatch is a Receipt
        with `error` set. Raises ChainError('Dropped') when a tx outlives its mortality and
        ChainError('Timeout') after timeout_s."""
        watcher = self.watcher(finality=finality)
        for tx in txs:
            watcher.add(tx)
        receipts: dict[str, Receipt] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            ready, dropped = watcher.poll()
            if dropped:
                raise dropped[0]
            for r in ready:
                receipts[r.tx_hash] = r
            if len(receipts) == len(txs):
                return [receipts[tx.tx_hash] for tx in txs]
            if time.monotonic() > deadline:
                missing = [tx for tx in txs if tx.tx_hash not in receipts]
                for tx in missing:
                    self.resync_nonce(tx.signer)
                raise ChainError(
                    "Timeout",
                    f"not {'finalized' if finality else 'included'} after "
                    f"{timeout_s:.0f} s: {', '.join(tx.tx_hash for tx in missing)}",
                    tx_hash=missing[0].tx_hash,
                )
            time.sleep(poll_s)

    def _receipt(
        self, tx: PendingTx, block_hash: str, number: int, index: int, events: list[Event]
    ) -> Receipt:
        mine = [e for e in events if e.extrinsic_index == index]
        error = None
        success = True
        for e in mine:
            if e.pallet == "System" and e.name == "ExtrinsicFailed":
                success = False
                error = self._dispatch_error(e.attributes, tx, block_hash, index)
            elif e.pallet == PALLET and e.name == "ClearingRejected":
                # The extrinsic succeeded so that the submitter's deposit is burned, but the
                # clearing was refused: to the caller, a refusal named by its check. (A
                # registration may first reject another's abandoned one: then its own outcome
                # is the last event, and `ClearingAccepted` wins.)
                success = False
                error = self.error_of(
                    e.attributes["error"],
                    tx_hash=tx.tx_hash,
                    block_hash=block_hash,
                    extrinsic_index=index,
                )
        if any(e.pallet == PALLET and e.name == "ClearingAccepted" for e in mine):
            success, error = True, None
        return Receipt(tx.tx_hash, block_hash, number, index, success, error, mine, call=tx.call)

    def _dispatch_error(
        self, attributes: Any, tx: PendingTx, block_hash: str, index: int
    ) -> ChainError:
        dispatch_error = (
            attributes["dispatch_error"] if isinstance(attributes, dict) else attributes[0]
        )
        return self.error_of(
            dispatch_error, tx_hash=tx.tx_hash, block_hash=block_hash, extrinsic_index=index
        )

    def refusals(self, receipt: Receipt, event: str) -> dict[tuple[str, int], str]:
        """The entries of a landed relayed batch that the pallet refused, in batch order:
        (owner, client order id) -> the error's name, from its `RelayedOrderRefused` or
        `RelayedCancelRefused` events."""
        return {
            (ss58(ev.attributes["owner"]), int(ev.attributes["client_order_id"])): (
                self.error_of(ev.attributes["error"]).name
            )
            for ev in receipt.find(PALLET, event)
        }

    def error_of(self, dispatch_error: Any, **where: Any) -> ChainError:
        """A decoded `DispatchError` (from a failed extrinsic or an event that carries one, such
        as `RelayedOrderRefused`) as a ChainError named after the pallet's error."""
        if isinstance(dispatch_error, dict) and "Module" in dispatch_error:
            module = dispatch_error["Module"]
            if isinstance(module, (tuple, list)):
                module_index, error_index = module[0], module[1]
            else:
                module_index, error_index = module["index"], module["error"]
            if isinstance(error_index, str):  # [u8; 4]: the first byte is the variant
                error_index = int(error_index[2:4], 16)
            elif isinstance(error_index, (bytes, list)):
                error_index = error_index[0]
            pallet = self._pallet_name(module_index)
            error = self.substrate.metadata.get_module_error(
                module_index=module_index, error_index=error_index
            )
            docs = " ".join(error.docs).strip() if error is not None and error.docs else ""
            return ChainError(
                error.name if error is not None else f"Error{error_index}",
                docs,
                pallet=pallet,
                **where,
            )
        if isinstance(dispatch_error, dict):
            ((name, inner),) = dispatch_error.items()
            return ChainError(str(name), "" if inner is None else str(inner), **where)
        return ChainError(str(dispatch_error), **where)

    def _pallet_name(self, module_index: int) -> str | None:
        for pallet in self.substrate.metadata.pallets:
            if pallet["index"] == module_index:
                return pallet.name
        return None

    # -- conveniences for the market --------------------------------------------------------
    def place_orders_relayed(self, relayer: Keypair, orders: Sequence[SignedOrder], **kwargs):
        return self.submit(relayer, "place_orders_relayed", relayed_orders_args(orders), **kwargs)

    def cancel_orders_relayed(self, relayer: Keypair, cancels: Sequence[SignedCancel], **kwargs):
        return self.submit(
            relayer, "cancel_orders_relayed", relayed_cancels_args(cancels), **kwargs
        )

    @staticmethod
    def clearing_params(
        interval: int,
        mechanism: str,
        volume_wh: int,
        zone_prices: Iterable[tuple[int, int]],
        matches: Iterable[dict],
        book_orders: int,
        book_traders: int,
    ) -> dict:
        """The arguments of `submit_clearing`, from plain values (matches as dicts with bid,
        offer, quantity_wh, buyer_price, seller_price). `book_orders` is the size of the
        interval's book (cancelled orders included) and `book_traders` the accounts with open
        orders in it: the pallet prices the call by them and the matches."""
        return {
            "interval": interval,
            "mechanism": to_chain_name(mechanism),
            "volume_wh": int(volume_wh),
            "book": {"orders": int(book_orders), "traders": int(book_traders)},
            "zone_prices": [{"zone": int(z), "price": int(p)} for z, p in zone_prices],
            "matches": _chain_matches(matches),
        }

    @staticmethod
    def registration_params(
        interval: int,
        mechanism: str,
        volume_wh: int,
        zone_prices: Iterable[tuple[int, int]],
        matches: int,
        pages: int,
    ) -> dict:
        """The arguments of `register_clearing`: the claim of a clearing sent in `pages`
        pages with `matches` matches in all."""
        return {
            "interval": interval,
            "mechanism": to_chain_name(mechanism),
            "volume_wh": int(volume_wh),
            "zone_prices": [{"zone": int(z), "price": int(p)} for z, p in zone_prices],
            "matches": int(matches),
            "pages": int(pages),
        }

    @staticmethod
    def clearing_page_params(
        interval: int,
        page: int,
        matches: Iterable[dict],
        finish: tuple[int, int, int] | None = None,
    ) -> bytes:
        """The arguments of `submit_clearing_page`, SCALE-encoded here (a page holds up to
        10,000 matches, which substrate-interface would take seconds to encode). The last page
        carries `finish`: the book's orders and traders (as `clearing_params`' book) and the
        clearing's matches over all pages, which price it."""
        rows = [
            (m["bid"], m["offer"], m["quantity_wh"], m["buyer_price"], m["seller_price"])
            for m in matches
        ]
        witness = b"\x00" if finish is None else b"\x01" + struct.pack("<III", *finish)
        return (
            struct.pack("<QI", interval, page)
            + _compact(len(rows))
            + b"".join(struct.pack("<5Q", *row) for row in rows)
            + witness
        )

    @staticmethod
    def reading_params(
        meter: str | bytes,
        epoch: int,
        interval: int,
        counter: int,
        import_wh: int,
        export_wh: int,
        signature: str | bytes,
    ) -> dict:
        """The arguments of `submit_reading`: the `MeterReading` (its fields in SCALE order) and
        the meter's signature over `reading:v2 ++ genesis hash ++ MeterReading`."""
        meter_hex = "0x" + public_key(meter).hex()
        sig_hex = signature if isinstance(signature, str) else "0x" + bytes(signature).hex()
        return {
            "reading": {
                "meter": meter_hex,
                "epoch": int(epoch),
                "interval": int(interval),
                "counter": int(counter),
                "import_wh": int(import_wh),
                "export_wh": int(export_wh),
            },
            "signature": sig_hex,
        }

    def call_ref_time(self, function: str, params: dict, *, module: str = PALLET) -> int:
        """The ref time (ps) the runtime's weights give a call, its own only (no transaction
        extensions, no per-extrinsic base), from the runtime's `query_call_info`; nothing is
        submitted."""

        def run(s: SubstrateInterface) -> int:
            call = s.compose_call(
                call_module=module,
                call_function=function,
                call_params=_encodable(s, module, function, params),
            )
            info = s.runtime_call(
                "TransactionPaymentCallApi", "query_call_info", [call, len(call.data)]
            )
            return int(info.value["weight"]["ref_time"])

        return self._call(run)

    def raw_call_ref_time(self, function: str, args: bytes, *, module: str = PALLET) -> int:
        """`call_ref_time` of a call given as its SCALE-encoded arguments (as
        `clearing_page_params` makes them), through the runtime API's raw bytes: its answer
        starts with the weight, two compact integers (ref time, proof size)."""
        call = self._call(lambda s: self._call_index(s, module, function)) + args
        data = call + struct.pack("<I", len(call))
        result = self.rpc(
            "state_call", ["TransactionPaymentCallApi_query_call_info", "0x" + data.hex()]
        )
        ref_time, _ = read_compact(bytes.fromhex(result[2:]), 0)
        return ref_time

    def max_call_ref_time(self) -> int:
        """The most ref time (ps) one normal extrinsic may take in a block (`BlockWeights`)."""
        weights = self.constant("System", "BlockWeights")
        return int(weights["per_class"]["normal"]["max_extrinsic"]["ref_time"])

    def encode_call_args(self, function: str, params: dict, module: str = PALLET) -> bytes:
        """The SCALE bytes of a call's arguments (the call data without its 2-byte index)."""
        call = self._call(
            lambda s: s.compose_call(
                call_module=module,
                call_function=function,
                call_params=_encodable(s, module, function, params),
            )
        )
        return bytes(call.data.data)[2:]


class ReceiptWatcher:
    """Finds submitted extrinsics in new blocks without blocking: add() them, then poll() as
    often as convenient. With finality, a receipt is ready once its block is finalized and still
    canonical (a retracted block puts the tx back to be found again)."""

    def __init__(self, chain: Chain, *, finality: bool = False, events: bool = True):
        self.chain = chain
        self.finality = finality
        self.read_events = events
        self.pending: dict[str, PendingTx] = {}
        self.included: dict[str, Receipt] = {}
        self.scanned: int | None = None

    def add(self, tx: PendingTx) -> None:
        self.pending[tx.tx_hash] = tx
        start = tx.best_at_submit
        self.scanned = start if self.scanned is None else min(self.scanned, start)

    def __len__(self) -> int:
        return len(self.pending)

    def poll(self) -> tuple[list[Receipt], list[ChainError]]:
        """(receipts now ready, ChainError('Dropped') for txs past their mortality)."""
        if not self.pending:
            return [], []
        chain = self.chain
        best = chain.best_number()
        for number in range(self.scanned + 1, best + 1):
            block_hash = chain.block_hash(number)
            if block_hash is None:
                break
            hashes = chain.block_extrinsic_hashes(block_hash)
            hits = [
                (i, h) for i, h in enumerate(hashes) if h in self.pending and h not in self.included
            ]
            if hits and not self.read_events:
                for index, tx_hash in hits:
                    tx = self.pending[tx_hash]
                    self.included[tx_hash] = Receipt(
                        tx_hash,
                        block_hash,
                        number,
                        index,
                        True,
                        None,
                        [],
                        call=tx.call,
                        events_read=False,
                    )
            elif hits:
                events = chain.events(block_hash)
                for index, tx_hash in hits:
                    self.included[tx_hash] = chain._receipt(
                        self.pending[tx_hash], block_hash, number, index, events
                    )
            self.scanned = number
        ready: list[Receipt] = []
        if self.finality and self.included:
            finalized = chain.finalized_number()
            for tx_hash, receipt in list(self.included.items()):
                if receipt.block_number > finalized:
                    continue
                if chain.block_hash(receipt.block_number) == receipt.block_hash:
                    receipt.finalized = True
                    ready.append(receipt)
                else:
                    log.warning(
                        "block %s with %s was retracted; looking again", receipt.block_hash, tx_hash
                    )
                    del self.included[tx_hash]
                    self.scanned = min(self.scanned, receipt.block_number - 1)
        elif not self.finality:
            ready = list(self.included.values())
        for receipt in ready:
            self.pending.pop(receipt.tx_hash, None)
            self.included.pop(receipt.tx_hash, None)
        dropped = []
        for tx_hash, tx in list(self.pending.items()):
            if tx_hash not in self.included and best > tx.mortal_until:
                chain.resync_nonce(tx.signer)
                dropped.append(
                    ChainError(
                        "Dropped",
                        f"{tx.call} {tx_hash} was not included by block {tx.mortal_until}",
                        tx_hash=tx_hash,
                    )
                )
                del self.pending[tx_hash]
        return ready, dropped


# -- relayed batches, encoded here ------------------------------------------------------------
# scalecodec took about 0.3 ms an order to encode a batch (three times: the call, the payload,
# the extrinsic), a fifth of the workers' time under load. The layouts are the pallet's
# `SignedOrder` and `SignedCancel` (docs/chain-interface.md); a chain test checks them against
# the node's metadata.


def relayed_orders_args(orders: Sequence[SignedOrder]) -> bytes:
    """`place_orders_relayed`'s argument: `Vec<SignedOrder>` (owner, spec, signature)."""
    return _compact(len(orders)) + b"".join(
        public_key(o.owner) + o.spec.encode() + _signature(o.signature) for o in orders
    )


def relayed_cancels_args(cancels: Sequence[SignedCancel]) -> bytes:
    """`cancel_orders_relayed`'s argument: `Vec<SignedCancel>` (owner, client order id,
    signature)."""
    return _compact(len(cancels)) + b"".join(
        public_key(c.owner) + struct.pack("<Q", c.client_order_id) + _signature(c.signature)
        for c in cancels
    )


def _signature(signature: bytes) -> bytes:
    if len(signature) != 64:
        raise ValueError(f"a signature is 64 bytes, got {len(signature)}")
    return bytes(signature)


def _compact(n: int) -> bytes:
    """SCALE's compact integer."""
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    if n < 1 << 30:
        return ((n << 2) | 2).to_bytes(4, "little")
    raw = n.to_bytes((n.bit_length() + 7) // 8, "little")
    return bytes([((len(raw) - 4) << 2) | 3]) + raw


def _chain_matches(matches: Iterable[dict]) -> list[dict]:
    """Matches as the pallet's `Match` (bid, offer, quantity_wh, buyer_price, seller_price)."""
    return [
        {
            "bid": int(m["bid"]),
            "offer": int(m["offer"]),
            "quantity_wh": int(m["quantity_wh"]),
            "buyer_price": int(m["buyer_price"]),
            "seller_price": int(m["seller_price"]),
        }
        for m in matches
    ]


def _sign_encoded(
    s: SubstrateInterface, signer: Keypair, call: bytes, nonce: int | None, era_period: int
) -> bytes:
    """A signed extrinsic (v4) around an already encoded call. substrate-interface signs a
    one-byte remark with the same nonce and era; its extrinsic gives the signed extensions'
    explicit bytes (`extra`) and its payload their implicit ones (spec version, genesis, era
    block...), so the runtime's extensions stay substrate-interface's business. The call goes
    where the remark was, signed over `call ++ extra ++ implicit` (hashed above 256 bytes)."""
    remark = s.compose_call(
        call_module="System", call_function="remark", call_params={"remark": "0x"}
    )
    remark_call = bytes(remark.data.data)
    era: dict[str, Any] = {"period": era_period}  # create_signed_extrinsic adds the era's block
    template = bytes(
        s.create_signed_extrinsic(call=remark, keypair=signer, nonce=nonce, era=era).data.data
    )
    _, skip = read_compact(template, 0)
    body = template[skip:]
    # version 4 signed (0x84), MultiAddress::Id (0x00 ++ 32 bytes), MultiSignature (variant ++ 64)
    signed_part = 1 + 33 + 1 + 64
    if body[0] != 0x84 or body[1] != 0x00 or not body.endswith(remark_call):
        raise ChainError("Encoding", f"unexpected extrinsic layout: {template.hex()}")
    extra = body[signed_part : len(body) - len(remark_call)]
    payload = bytes(s.generate_signature_payload(call=remark, era=era, nonce=nonce).data)
    if not payload.startswith(remark_call + extra):
        raise ChainError("Encoding", f"unexpected signature payload: {payload.hex()}")
    implicit = payload[len(remark_call) + len(extra) :]
    message = call + extra + implicit
    if len(message) > 256:
        message = hashlib.blake2b(message, digest_size=32).digest()
    signature = bytes(signer.sign(message))
    signed = body[:35] + signature + extra + call
    return _compact(len(signed)) + signed


def _encodable(s: SubstrateInterface, module: str, function: str, params: dict) -> dict:
    """scalecodec 1.2 sees a BoundedVec argument as a one-field tuple around the Vec: hand it
    the list wrapped that way, so callers pass plain lists."""
    fields = s.get_metadata_call_function(module, function).value["fields"]
    out = dict(params)
    for f in fields:
        type_name = f.get("typeName") or ""
        value = out.get(f["name"])
        if type_name.startswith(("BoundedVec<", "WeakBoundedVec<")) and isinstance(value, list):
            out[f["name"]] = (value,)
    return out
