"""The relayer: moves logged orders and cancels from the write-ahead log onto the chain.

Entries go in batches (`place_orders_relayed`, `cancel_orders_relayed`), several extrinsics in
flight at once with consecutive nonces. A batch is all-or-nothing on chain, so when one fails its
entries come back one per extrinsic, and only the one the chain refuses is marked rejected, with
the pallet's error. Resubmitting is safe: the pallet skips an order it already has (same owner,
client order id and content) and treats a repeated cancel as a no-op, so after a crash every
entry not known to be on chain is simply sent again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from substrateinterface import Keypair

from chain import PALLET, Chain, ChainError
from market import MarketParams, SignedCancel, SignedOrder, now_ms, ss58
from store import DataDir, alert
from store.orderlog import LoggedOrder, OrderLog

log = logging.getLogger(__name__)

# Pool refusals that are the relayer's problem (fees, size), not the order's.
_RELAYER_FAULTS = (
    "payment",
    "inability to pay",
    "exhausts",
    "resources",
    "badproof",
    "bad signature",
)
LATE_GRACE_MS = (
    2_000  # an order this long past its gate cannot make it: the chain's verdict is certain
)


@dataclass
class _Flight:
    table: str
    entries: list  # LoggedOrder | LoggedCancel


class Relayer:
    name = "relayer"

    def __init__(
        self, data: DataDir, chain: Chain, signer: Keypair, *, batch: int = 128, in_flight: int = 3
    ):
        self.data = data
        self.chain = chain
        self.signer = signer
        self.batch = max(1, batch)
        self.in_flight = max(1, in_flight)
        self.log = OrderLog(data.orders())
        self.watcher = chain.watcher()
        self.flights: dict[str, _Flight] = {}
        self._recovered = False
        self._params: MarketParams | None = None
        self._params_at = 0.0
        self._pause_until = 0.0
        self.relayed = 0  # entries that reached the chain since start

    # -- lifecycle ---------------------------------------------------------------------------
    def recover(self) -> None:
        """Entries a previous run had submitted: on chain already, or back in the queue."""
        for row in self.log.submitted("orders"):
            order_id = self.chain.client_order_id(row["owner"], int(row["client_order_id"]))
            if order_id is not None:
                self.log.mark_onchain("orders", [(row["seq"], order_id)], None, None)
            else:
                self.log.back_to_pending("orders", [row["seq"]], solo=False)
        for row in self.log.submitted("cancels"):
            order_id = self.chain.client_order_id(row["owner"], int(row["client_order_id"]))
            order = self.chain.order(order_id) if order_id is not None else None
            if order is not None and order.status == "cancelled":
                self.log.mark_onchain("cancels", [(row["seq"], None)], None, None)
            else:
                self.log.back_to_pending("cancels", [row["seq"]], solo=False)
        self._recovered = True

    def step(self) -> int:
        """One round: collect what landed, send what waits. Returns entries sent."""
        if not self._recovered:
            self.recover()
        self._collect()
        if time.monotonic() < self._pause_until:
            return 0
        sent = 0
        sent += self._send("orders")
        sent += self._send("cancels")
        return sent

    def busy(self) -> bool:
        return bool(self.flights)

    # -- sending -----------------------------------------------------------------------------
    def _params_now(self) -> MarketParams:
        if self._params is None or time.monotonic() - self._params_at > 10:
            self._params = self.chain.market_params()
            self._params_at = time.monotonic()
        return self._params

    def _in_flight_seqs(self, table: str) -> set[int]:
        return {e.seq for f in self.flights.values() if f.table == table for e in f.entries}

    def _send(self, table: str) -> int:
        sent = 0
        while len(self.flights) < self.in_flight:
            exclude = self._in_flight_seqs(table)
            if table == "orders":
                entries = self._drop_late(self.log.pending_orders(self.batch, exclude=exclude))
            else:
                entries = self.log.pending_cancels(self.batch, exclude=exclude)
            if not entries:
                break
            # Entries of a failed batch go alone, so the chain names the bad one.
            solo = [e for e in entries if e.attempts > 0]
            groups = [[e] for e in solo] if solo else [entries]
            for group in groups:
                if not self._submit(table, group):
                    return sent
                sent += len(group)
        return sent

    def _drop_late(self, entries: list[LoggedOrder]) -> list[LoggedOrder]:
        params = self._params_now()
        now = now_ms()
        keep = []
        for e in entries:
            if now >= params.gate_closure(e.spec.interval) + LATE_GRACE_MS:
                log.warning(
                    "order %s/%d reached the relayer after its gate closed",
                    e.owner,
                    e.spec.client_order_id,
                )
                self.log.mark_rejected("orders", e.seq, "GateClosed")
            else:
                keep.append(e)
        return keep

    def _submit(self, table: str, group: list) -> bool:
        if table == "orders":
            function = "place_orders_relayed"
            params = {
                "orders": [
                    SignedOrder(e.owner, e.spec, bytes.fromhex(e.signature[2:])).to_call_arg()
                    for e in group
                ]
            }
        else:
            function = "cancel_orders_relayed"
            params = {
                "cancels": [
                    SignedCancel(
                        e.owner, e.client_order_id, bytes.fromhex(e.signature[2:])
                    ).to_call_arg()
                    for e in group
                ]
            }
        seqs = [e.seq for e in group]
        try:
            tx = self.chain.submit_nowait(self.signer, function, params)
        except ChainError as exc:
            text = f"{exc.name}: {exc.detail}"
            if len(group) > 1:
                log.warning(
                    "pool refused a batch of %d %s (%s); sending them one by one",
                    len(group),
                    table,
                    text,
                )
                self.log.back_to_pending(table, seqs, solo=True, error=text)
                return True
            if any(k in exc.detail.lower() for k in _RELAYER_FAULTS) or exc.name == "Connection":
                log.error("relayer cannot submit (%s); pausing", text)
                alert(self.data.ops(), self.name, exc.name, text)
                self._pause_until = time.monotonic() + 5
                return False
            self.log.mark_rejected(table, seqs[0], text)
            return True
        self.log.mark_submitted(table, seqs, tx.tx_hash)
        self.watcher.add(tx)
        self.flights[tx.tx_hash] = _Flight(table, group)
        log.debug("sent %d %s in %s", len(group), table, tx.tx_hash)
        return True

    # -- collecting --------------------------------------------------------------------------
    def _collect(self) -> None:
        if not self.flights:
            return
        ready, dropped = self.watcher.poll()
        for receipt in ready:
            flight = self.flights.pop(receipt.tx_hash, None)
            if flight is None:
                continue
            seqs = [e.seq for e in flight.entries]
            if receipt.success:
                if flight.table == "orders":
                    placed = {
                        (ss58(ev.attributes["owner"]), int(ev.attributes["client_order_id"])): int(
                            ev.attributes["order_id"]
                        )
                        for ev in receipt.find(PALLET, "OrderPlaced")
                    }
                    items = []
                    for e in flight.entries:
                        order_id = placed.get((e.owner, e.spec.client_order_id))
                        if order_id is None:  # skipped as already on chain: look it up
                            order_id = self.chain.client_order_id(e.owner, e.spec.client_order_id)
                        items.append((e.seq, order_id))
                    self.log.mark_onchain("orders", items, receipt.block_hash, receipt.block_number)
                else:
                    self.log.mark_onchain(
                        "cancels",
                        [(s, None) for s in seqs],
                        receipt.block_hash,
                        receipt.block_number,
                    )
                self.relayed += len(seqs)
            elif len(seqs) == 1:
                error = receipt.error.name if receipt.error else "ExtrinsicFailed"
                log.info("chain rejected %s entry %d: %s", flight.table, seqs[0], error)
                self.log.mark_rejected(flight.table, seqs[0], error)
            else:
                error = receipt.error.name if receipt.error else "ExtrinsicFailed"
                log.info(
                    "a batch of %d %s failed with %s; resending them one by one",
                    len(seqs),
                    flight.table,
                    error,
                )
                self.log.back_to_pending(flight.table, seqs, solo=True, error=error)
        for exc in dropped:
            flight = self.flights.pop(exc.tx_hash, None)
            if flight is not None:
                log.warning("%s; resending its %d entries", exc, len(flight.entries))
                self.log.back_to_pending(flight.table, [e.seq for e in flight.entries], solo=False)

    def drain(self, timeout_s: float = 60.0) -> None:
        """Run until the log has nothing pending or in flight (tests, the demo's shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.step()
            counts = self.log.counts()
            if not self.flights and not counts.get("pending") and not counts.get("submitted"):
                return
            time.sleep(0.2)
        raise TimeoutError("relayer did not drain the log in time")


__all__ = ["Relayer"]
