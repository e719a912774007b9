"""The relayer: moves logged orders and cancels from the write-ahead log onto the chain.

Entries go in batches (`place_orders_relayed`, `cancel_orders_relayed`), several extrinsics in
flight at once with consecutive nonces. The pallet applies each entry of a batch on its own and
names every one it refuses in a `RelayedOrderRefused` / `RelayedCancelRefused` event, so a bad or
hostile entry is marked rejected with the pallet's error and never delays the batch's others. Only
a batch that fails whole (or that the pool refuses) comes back one entry per extrinsic, so the
chain's verdict names the culprit. Resubmitting is safe: the pallet skips an order it already
has (same owner, client order id and content) and treats a repeated cancel as a no-op, so after
a crash every entry not known to be on chain is simply sent again.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from substrateinterface import Keypair

from chain import (
    PALLET,
    Chain,
    ChainError,
    PendingTx,
    Receipt,
    relayed_cancels_args,
    relayed_orders_args,
)
from market import MarketParams, SignedCancel, SignedOrder, now_ms, ss58
from store import DataDir, alert
from store.db import GroupCommit
from store.orderlog import LoggedOrder, OrderLog

from . import metrics
from .metrics import KIND

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
# A batch not yet full is sent once a slot, this long before the next block begins (blocks
# begin on the slot's boundaries), with whatever has gathered: in time for that block. Sent at
# each step (0.1 s) instead, batches averaged 93 orders at 500 orders/s, each paid the batch's
# 13.3 ms of weight, and blocks filled up at about 2,000 orders and left the rest to the next
# one, which went out nearly empty: 10 % of the orders reached the chain 3 blocks after their
# 202.
PARTIAL_BATCH_LEAD_MS = 400


@dataclass
class _Flight:
    table: str
    entries: list  # LoggedOrder | LoggedCancel
    tx: PendingTx


class Relayer:
    name = "relayer"

    def __init__(
        self,
        data: DataDir,
        chain: Chain,
        signer: Keypair,
        *,
        batch: int = 128,
        in_flight: int = 3,
        partial_lead_ms: int | None = PARTIAL_BATCH_LEAD_MS,
        clock: Callable[[], int] = now_ms,
    ):
        """At most `in_flight` full batches' worth of entries in flight. A batch not yet full
        waits for the last `partial_lead_ms` of the slot (None: it goes at once)."""
        self.data = data
        self.chain = chain
        self.signer = signer
        self.batch = max(1, batch)
        self.most_in_flight = self.batch * max(1, in_flight)
        self.partial_lead_ms = partial_lead_ms
        self.clock = clock
        self._slot_ms: int | None = None
        self._partial_sent: dict[str, int] = {}  # table: the slot its last partial batch went in
        # A group commit of its own, out of the API's commit-latency metric (`log_commits()`).
        self.log = OrderLog(data.orders(), GroupCommit())
        # Where a batch landed is enough when all its orders are on chain as sent (read raw,
        # `_placed_as_sent`); a block's events are decoded only when they are not: decoding a
        # full block's took about a second of the workers' time.
        self.watcher = chain.watcher(events=False)
        self.flights: dict[str, _Flight] = {}
        self._recovered = False
        self._opened: int | None = None  # the chain's connections at the last step
        self._params: MarketParams | None = None
        self._params_at = 0.0
        self._pause_until = 0.0
        self.relayed = 0  # entries that reached the chain since start
        # (unix ms, best block) seen at each submission: where an entry's relay lag starts.
        self._seen_ms: list[int] = []
        self._seen_best: list[int] = []
        # A step's relay-state writes, made together after its chain reads (`_flush`).
        self._writes: list[Callable[[], None]] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def recover(self) -> None:
        """Entries a previous run had submitted: on chain already, or back in the queue. Orders
        are looked up and written all at once: one by one (a read and an fsync each), the
        batches a killed relayer had in flight took about 10 s, past their orders' gates."""
        rows = self.log.submitted("orders")
        ids = self.chain.client_order_ids([(r["owner"], int(r["client_order_id"])) for r in rows])
        found = [(row["seq"], order_id) for row, order_id in zip(rows, ids) if order_id is not None]
        if found:
            self.log.mark_onchain("orders", found, None, None)
        unknown = [row["seq"] for row, order_id in zip(rows, ids) if order_id is None]
        if unknown:
            self.log.back_to_pending("orders", unknown, solo=False)
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
        sent = 0
        try:
            self._collect()
            self._resend_after_reconnect()
            if time.monotonic() >= self._pause_until:
                sent += self._send("orders")
                sent += self._send("cancels")
        finally:
            self._flush()
        self._publish_backlog()
        return sent

    def _publish_backlog(self) -> None:
        now = now_ms()
        for table, kind in KIND.items():
            waiting, oldest = self.log.backlog(table)
            flying = sum(len(f.entries) for f in self.flights.values() if f.table == table)
            metrics.RELAY_BACKLOG.labels(kind, "pending").set(waiting)
            metrics.RELAY_BACKLOG.labels(kind, "in_flight").set(flying)
            age_s = 0.0 if oldest is None else max(0, now - oldest) / 1000
            metrics.RELAY_OLDEST_PENDING.labels(kind).set(age_s)

    def _saw_best(self, best: int) -> None:
        self._seen_ms.append(now_ms())
        self._seen_best.append(best)
        if len(self._seen_ms) > 4096:
            del self._seen_ms[:2048], self._seen_best[:2048]

    def _lag(self, table: str, entries: list, block_number: int | None) -> None:
        """Relay lag of entries that just landed in block `block_number`."""
        now = now_ms()
        for e in entries:
            received = e.received_ms
            if received is None:
                continue
            metrics.RELAY_LAG_SECONDS.labels(KIND[table]).observe(max(0, now - received) / 1000)
            if block_number is not None and self._seen_ms:
                i = min(bisect.bisect_left(self._seen_ms, received), len(self._seen_ms) - 1)
                lag = max(0, block_number - self._seen_best[i])
                metrics.RELAY_LAG_BLOCKS.labels(KIND[table]).observe(lag)

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

    def _flying(self) -> int:
        return sum(len(f.entries) for f in self.flights.values())

    def _partial_turn(self, table: str) -> bool:
        """Whether a batch not yet full may go now, taking the slot's turn if so: once a slot,
        in its last `partial_lead_ms`."""
        if self.partial_lead_ms is None:
            return True
        if self._slot_ms is None:
            self._slot_ms = self.chain.block_ms()
        now = self.clock()
        slot = now // self._slot_ms
        if self._partial_sent.get(table) == slot:
            return False
        if (slot + 1) * self._slot_ms - now > self.partial_lead_ms:
            return False
        self._partial_sent[table] = slot
        return True

    def _later(self, write: Callable[..., None], *args, **kwargs) -> None:
        self._writes.append(partial(write, *args, **kwargs))

    def _flush(self) -> None:
        """The step's writes `_later` gathered, in one transaction of the log: each batch's own
        took the log's write lock and an fsync, and at 1,000 orders/s the relayer waited on it
        between batches behind the API's appends."""
        writes, self._writes = self._writes, []
        if writes:
            self.log.together(lambda: [write() for write in writes])

    def _send(self, table: str) -> int:
        sent = 0
        while self._flying() < self.most_in_flight:
            exclude = self._in_flight_seqs(table)
            room = min(self.batch, self.most_in_flight - self._flying())
            if table == "orders":
                entries = self._drop_late(self.log.pending_orders(room, exclude=exclude))
            else:
                entries = self.log.pending_cancels(room, exclude=exclude)
            if not entries:
                break
            # Entries of a failed batch go alone, so the chain names the bad one.
            solo = [e for e in entries if e.attempts > 0]
            if not solo and len(entries) < self.batch and not self._partial_turn(table):
                break
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
                metrics.RELAY_REJECTED.labels("order", "GateClosed").inc()
            else:
                keep.append(e)
        return keep

    def _submit(self, table: str, group: list) -> bool:
        if table == "orders":
            function = "place_orders_relayed"
            args = relayed_orders_args(
                [SignedOrder(e.owner, e.spec, bytes.fromhex(e.signature[2:])) for e in group]
            )
        else:
            function = "cancel_orders_relayed"
            args = relayed_cancels_args(
                [
                    SignedCancel(e.owner, e.client_order_id, bytes.fromhex(e.signature[2:]))
                    for e in group
                ]
            )
        seqs = [e.seq for e in group]
        try:
            tx = self.chain.submit_nowait(self.signer, function, args)
        except ChainError as exc:
            text = f"{exc.name}: {exc.detail}"
            metrics.RELAY_BATCHES.labels("refused").inc()
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
            metrics.RELAY_REJECTED.labels(KIND[table], exc.name).inc()
            return True
        self._saw_best(tx.best_at_submit)
        # Until the flush, its entries are pending in the log: they are in `flights`, so not
        # sent again, and a crash before it only sends them again (the pallet skips them).
        self._later(self.log.mark_submitted, table, seqs, tx.tx_hash)
        self.watcher.add(tx)
        self.flights[tx.tx_hash] = _Flight(table, group, tx)
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
            if not receipt.events_read:
                placed = self._placed_as_sent(flight, receipt)
                if placed is not None:
                    self._later(
                        self.log.mark_onchain,
                        "orders",
                        placed,
                        receipt.block_hash,
                        receipt.block_number,
                    )
                    self._landed(flight, receipt)
                    continue
                receipt = self.chain.with_events(receipt, flight.tx)
            seqs = [e.seq for e in flight.entries]
            if receipt.success:
                event = (
                    "RelayedOrderRefused" if flight.table == "orders" else "RelayedCancelRefused"
                )
                refused = self.chain.refusals(receipt, event)
                for e in flight.entries:
                    error = refused.get((e.owner, e.client_order_id))
                    if error is not None:
                        log.info("chain refused %s entry %d: %s", flight.table, e.seq, error)
                        self._later(self.log.mark_rejected, flight.table, e.seq, error)
                        metrics.RELAY_REJECTED.labels(KIND[flight.table], error).inc()
                kept = [e for e in flight.entries if (e.owner, e.client_order_id) not in refused]
                flight = _Flight(flight.table, kept, flight.tx)
                seqs = [e.seq for e in kept]
                if flight.table == "orders":
                    placed = {
                        (ss58(ev.attributes["owner"]), int(ev.attributes["client_order_id"])): int(
                            ev.attributes["order_id"]
                        )
                        for ev in receipt.find(PALLET, "OrderPlaced")
                    }
                    # Entries the pallet skipped as already on chain (a resend): look them up.
                    skipped = [
                        (e.owner, e.spec.client_order_id)
                        for e in flight.entries
                        if (e.owner, e.spec.client_order_id) not in placed
                    ]
                    if skipped:
                        placed.update(zip(skipped, self.chain.client_order_ids(skipped)))
                    items = [
                        (e.seq, placed[(e.owner, e.spec.client_order_id)]) for e in flight.entries
                    ]
                    self._later(
                        self.log.mark_onchain,
                        "orders",
                        items,
                        receipt.block_hash,
                        receipt.block_number,
                    )
                else:
                    self._later(
                        self.log.mark_onchain,
                        "cancels",
                        [(s, None) for s in seqs],
                        receipt.block_hash,
                        receipt.block_number,
                    )
                self._landed(flight, receipt)
            elif len(seqs) == 1:
                error = receipt.error.name if receipt.error else "ExtrinsicFailed"
                log.info("chain rejected %s entry %d: %s", flight.table, seqs[0], error)
                self._later(self.log.mark_rejected, flight.table, seqs[0], error)
                metrics.RELAY_BATCHES.labels("failed").inc()
                metrics.RELAY_REJECTED.labels(KIND[flight.table], error).inc()
            else:
                metrics.RELAY_BATCHES.labels("failed").inc()
                error = receipt.error.name if receipt.error else "ExtrinsicFailed"
                log.info(
                    "a batch of %d %s failed with %s; resending them one by one",
                    len(seqs),
                    flight.table,
                    error,
                )
                self._later(self.log.back_to_pending, flight.table, seqs, solo=True, error=error)
        for exc in dropped:
            flight = self.flights.pop(exc.tx_hash, None)
            if flight is not None:
                metrics.RELAY_BATCHES.labels("dropped").inc()
                log.warning("%s; resending its %d entries", exc, len(flight.entries))
                self._later(
                    self.log.back_to_pending,
                    flight.table,
                    [e.seq for e in flight.entries],
                    solo=False,
                )

    def _placed_as_sent(self, flight: _Flight, receipt: Receipt) -> list | None:
        """(seq, order id) of every order of a landed batch when each is on chain, in that
        block, with the owner and content sent; None when any is not (refused, or the batch
        failed): then the block's events tell why."""
        if flight.table != "orders":
            return None
        keys = [(e.owner, e.spec.client_order_id) for e in flight.entries]
        ids = self.chain.client_order_ids(keys, receipt.block_hash)
        if any(i is None for i in ids):
            return None
        # A client order id taken by another order (other content) is a refusal, not a landing.
        found = {o.order_id: o for o in self.chain.orders(ids, receipt.block_hash)}
        for e, order_id in zip(flight.entries, ids):
            order = found.get(order_id)
            if order is None or order.owner != ss58(e.owner) or order.spec != e.spec:
                return None
        return [(e.seq, order_id) for e, order_id in zip(flight.entries, ids)]

    def _landed(self, flight: _Flight, receipt: Receipt) -> None:
        self.relayed += len(flight.entries)
        metrics.RELAY_BATCHES.labels("landed").inc()
        metrics.RELAYED.labels(KIND[flight.table]).inc(len(flight.entries))
        self._lag(flight.table, flight.entries, receipt.block_number)

    def _resend_after_reconnect(self) -> None:
        """After a new connection the node may be one that restarted: its pool, and the batches
        in flight in it, are gone. Found dropped only at the end of their mortality (64 blocks,
        two minutes), most of their orders would miss their gates: resend them now. A batch that
        did land is harmless to resend (the pallet skips what it has, see above)."""
        opened = self.chain.opened
        if self._opened is not None and opened != self._opened and self.flights:
            entries = sum(len(f.entries) for f in self.flights.values())
            log.warning(
                "connected to the node again: resending the %d entries of the %d batches in"
                " flight (a restarted node has lost them)",
                entries,
                len(self.flights),
            )
            for flight in self.flights.values():
                metrics.RELAY_BATCHES.labels("dropped").inc()
                self.log.back_to_pending(flight.table, [e.seq for e in flight.entries], solo=False)
            self.flights.clear()
        self._opened = opened

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
