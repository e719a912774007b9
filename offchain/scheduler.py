"""The interval scheduler: at each gate closure, clear the interval's book and commit it.

For interval k, once a finalized block's timestamp has passed k's gate closure the book is
frozen (the pallet refuses orders and cancels from then on), so the scheduler reads k's orders
FROM THE CHAIN at that block, runs the matcher on them and submits `submit_clearing`, then waits
for inclusion and finality. Every interval is cleared, empty ones too: settlement needs it. A
clearing with more matches than a page holds (`MaxMatchesPerPage`) goes in pages: its
registration and every page are signed with consecutive nonces, logged, and broadcast at once,
so that blocks take them in order as fast as they fit (`_submit_paged`).

Never twice, never blindly:
- before submitting it reads `Clearings(k)`; a cleared interval is recorded, not resubmitted;
- the signed extrinsic is logged (ops.db) before the node sees it; after a crash the very same
  bytes are broadcast again and followed to their block, so a second clearing is never signed
  while the first may still land;
- a clearing the chain rejects is recorded with the pallet's error, raised as an alert, and
  never resubmitted blindly.

Never held for good: an interval that has no valid clearing by its deadline (its end: a
rejected clearing, or the scheduler was down) is voided with `void_interval`, a page of
`VOID_PAGE` orders per extrinsic, which releases every bid's hold. The chain lets anyone do it;
the scheduler does it as soon as the chain's clock has passed the deadline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from substrateinterface import Keypair

from chain import (
    PALLET,
    Chain,
    ChainError,
    ChainOrder,
    GridLine,
    PendingTx,
    Receipt,
    order_place,
)
from market import MarketParams, now_ms
from store import DataDir, alert, transaction

from . import metrics

log = logging.getLogger(__name__)

CLEARING_ERA = 16  # blocks a clearing extrinsic stays valid: a lost one is known lost in ~30 s
# Orders voided per `void_interval` extrinsic: each releases a hold (201 µs with the runtime's
# weights), so 500 take about 100 ms, a seventh of a block's normal weight: a full book of
# 10,000 is voided in 20 pages while other calls still get in.
VOID_PAGE = 500

# (matcher orders, mechanism, network) -> matcher.Clearing
ClearFn = Callable[[list[dict], str, dict | None], object]


def default_clear(orders: list[dict], mechanism: str, network: dict | None = None):
    import matcher

    return matcher.clear_orders(orders, mechanism=mechanism, network=network)


def _record_signed(c, attempt_id: int, tx: PendingTx, pages: int | None = None) -> None:
    """Marks an attempt signed with the extrinsic that decides it, and where to find it."""
    c.execute(
        "UPDATE clearing_attempts SET state = 'signed', pages = ?, tx_hash = ?, tx_data = ?,"
        " nonce = ?, best_at_submit = ?, mortal_until = ?, updated_ms = ? WHERE id = ?",
        (
            pages,
            tx.tx_hash,
            tx.data,
            tx.nonce,
            tx.best_at_submit,
            tx.mortal_until,
            now_ms(),
            attempt_id,
        ),
    )


def clearing_pages(matches: list[dict], page_size: int, book_page_size: int) -> list[list[dict]]:
    """A clearing's matches in pages of at most `page_size`, sorted by the book pages of their
    bid and offer, so that each page names few book pages (the pallet reads each once a page).
    One page (maybe empty) when they all fit."""
    if len(matches) <= page_size:
        return [matches]

    def book_pages(m: dict) -> tuple[int, int]:
        return (
            order_place(m["bid"])[1] // book_page_size,
            order_place(m["offer"])[1] // book_page_size,
        )

    ordered = sorted(matches, key=book_pages)
    return [ordered[i : i + page_size] for i in range(0, len(ordered), page_size)]


def clearing_witness(book: list[ChainOrder], matches: list[dict]) -> tuple[int, int, int]:
    """What prices the call that applies a clearing: the book's orders (cancelled ones
    included), the accounts with open orders in it, and the matches."""
    return (len(book), len({o.owner for o in book_for_clearing(book)}), len(matches))


def matcher_network(lines: list[GridLine], orders: list[ChainOrder]) -> dict | None:
    """The chain's grid as the matcher takes it (docs/matcher.md, "Network"), over the book's
    zones and the lines': energy crosses zones only over a line, up to its capacity. Without
    lines every zone is a market of its own (pay-as-bid too: given a network it takes the
    zonal fills instead of pooling the zones). None for an empty book without lines."""
    zones = {o.spec.zone for o in orders} | {z for line in lines for z in (line.a, line.b)}
    if not zones:
        return None
    # The matcher takes integers up to 2^63 - 1; the chain's u64 above that (an "unlimited"
    # line, say) means the same to any book.
    big = 2**63 - 1
    return {
        "zones": sorted(zones),
        "lines": [
            {
                "from": line.a,
                "to": line.b,
                "capacity_wh": min(line.capacity_wh, big),
                "fee": min(line.fee_ticks, big),
            }
            for line in lines
        ],
    }


def book_for_clearing(orders: list[ChainOrder]) -> list[ChainOrder]:
    """The orders a clearing of the interval must consider: all but the cancelled ones."""
    return [o for o in orders if o.status != "cancelled"]


class Scheduler:
    name = "scheduler"

    def __init__(
        self,
        data: DataDir,
        chain: Chain,
        operator: Keypair,
        *,
        clear_fn: ClearFn = default_clear,
        precheck: bool = True,
        finality: bool = True,
        start_interval: int | None = None,
        timeout_s: float = 120.0,
        lookback: int = 96,
        skip_after_intervals: int = 2,
        page_matches: int | None = None,
    ):
        self.data = data
        self.chain = chain
        self.operator = operator
        self.clear_fn = clear_fn
        self.precheck = precheck
        self.finality = finality
        self.timeout_s = timeout_s
        self.lookback = lookback
        self.skip_after_intervals = skip_after_intervals
        # Matches per page of a clearing, at most the chain's (None: the chain's).
        self.page_matches = page_matches
        self.ops = data.ops()
        self._params: MarketParams | None = None
        if start_interval is not None:
            self._set_next(start_interval, only_if_missing=True)
        self._publish_progress()

    def _publish_progress(self) -> None:
        """Clearing progress as ops.db has it (after a restart too)."""
        row = self.ops.execute(
            "SELECT MAX(interval) AS k FROM clearing_attempts WHERE state = 'committed'"
        ).fetchone()
        metrics.cleared(row["k"])
        k = self._get_next()
        if k is not None:
            metrics.NEXT_INTERVAL.set(k)

    # -- the cursor --------------------------------------------------------------------------
    def _get_next(self) -> int | None:
        row = self.ops.execute(
            "SELECT value FROM kv WHERE key = 'scheduler.next_interval'"
        ).fetchone()
        return None if row is None else int(row["value"])

    def _set_next(self, interval: int, *, only_if_missing: bool = False) -> None:
        verb = "INSERT OR IGNORE" if only_if_missing else "INSERT OR REPLACE"
        with transaction(self.ops) as c:
            c.execute(
                f"{verb} INTO kv (key, value) VALUES ('scheduler.next_interval', ?)",
                (str(interval),),
            )
        if not only_if_missing:
            metrics.NEXT_INTERVAL.set(interval)

    def params(self) -> MarketParams:
        if self._params is None:
            self._params = self.chain.market_params()
        return self._params

    def next_interval(self) -> int:
        k = self._get_next()
        if k is None:
            # First start: the earliest interval whose gate is still ahead, or an earlier one
            # whose orders nobody cleared (their bids' funds stay held until someone does).
            k = self.params().first_open_interval(now_ms())
            for j in range(max(0, k - self.lookback), k):
                if self.chain.book_len(j) and not self.chain.is_cleared(j):
                    log.info("interval %d has orders but no clearing: starting there", j)
                    k = j
                    break
            self._set_next(k)
        return k

    # -- one round -------------------------------------------------------------------------
    def step(self) -> dict | None:
        """Clear the next interval if its gate has closed on chain, or void it if its deadline
        has passed too; returns the attempt row. Rejected intervals past their end are voided
        first."""
        self._params = None  # params may change between intervals
        self.void_overdue()
        k = self.next_interval()
        # Its own gate: an interval keeps the parameters its gate closes under.
        own = self.chain.market_params(interval=k)
        gate = own.gate_closure(k)
        if now_ms() < gate:
            return None
        if self._stale_and_empty(k):
            self._set_next(k + 1)
            return self._record_skip(k)
        finalized = self.chain.finalized_hash()
        chain_now = self.chain.timestamp_ms(finalized)
        if chain_now < gate:
            return None  # the chain's clock has not passed the gate in a final block yet
        if chain_now >= own.interval_end(k) and not self.chain.is_cleared(k):
            attempt = self.void_interval(k)  # too late to clear (catching up after downtime)
        else:
            attempt = self.clear_interval(k, book_at=finalized)
        self._set_next(k + 1)
        return attempt

    # -- voiding -----------------------------------------------------------------------------
    def void_overdue(self) -> list[dict]:
        """Void every interval whose latest clearing attempt was rejected (or whose voiding was
        interrupted) once the chain's clock has passed its end."""
        rows = self.ops.execute(
            "SELECT a.interval FROM clearing_attempts a WHERE a.state IN ('rejected', 'voiding')"
            " AND a.id = (SELECT MAX(b.id) FROM clearing_attempts b WHERE b.interval = a.interval)"
            " ORDER BY a.interval"
        ).fetchall()
        if not rows:
            return []
        chain_now = self.chain.timestamp_ms()
        params = self.params()
        return [
            self.void_interval(r["interval"])
            for r in rows
            if chain_now >= params.interval_end(r["interval"])
        ]

    def _voided_finally(self, interval: int) -> bool:
        """Whether the voiding of `interval` is in a finalized block, waiting up to timeout_s."""
        deadline = time.monotonic() + self.timeout_s
        while self.chain.voided_at(interval, self.chain.finalized_hash()) is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def void_interval(self, interval: int) -> dict:
        """Void `interval` page by page until the chain records it voided (or cleared)."""
        last = (self.attempts(interval) or [None])[-1]
        if last is not None and last["state"] == "voiding":
            attempt_id = last["id"]
        else:
            created = now_ms()
            with transaction(self.ops) as c:
                attempt_id = c.execute(
                    "INSERT INTO clearing_attempts (interval, state, created_ms, updated_ms)"
                    " VALUES (?, 'voiding', ?, ?)",
                    (interval, created, created),
                ).lastrowid
            metrics.CLEARING_ATTEMPTS.labels("voiding").inc()
        voided = 0
        while self.chain.voided_at(interval) is None:
            book = self.chain.book_len(interval)
            params = {"interval": interval, "max_orders": VOID_PAGE, "book_orders": book}
            try:
                # A page goes on from the chain's own cursor, so one lost to a reorg is redone
                # by the next: pages wait for inclusion only, and the end for finality (below).
                receipt = self.chain.submit(
                    self.operator,
                    "void_interval",
                    params,
                    wait="inclusion",
                    timeout_s=self.timeout_s,
                )
            except ChainError as exc:
                if exc.name == "AlreadyVoided":
                    break
                if exc.name == "AlreadyCleared":
                    self._update(attempt_id, state="abandoned", error="cleared on chain")
                    return self._adopt_existing(interval)
                # DeadlineNotPassed (the chain's clock is behind ours) or the node is away:
                # the row stays 'voiding' and the next step carries on from the chain's cursor.
                self._update(attempt_id, error=f"{exc.name}: {exc.detail}".rstrip(": "))
                log.warning("interval %d: voiding paused: %s", interval, exc)
                return self.attempts(interval)[-1]
            if isinstance(receipt, Receipt):
                for e in receipt.find(PALLET, "IntervalVoiding"):
                    voided = int(e.attributes["total"])
                self._update(
                    attempt_id, block_hash=receipt.block_hash, block_number=receipt.block_number
                )
        if self.finality and not self._voided_finally(interval):
            return self.attempts(interval)[-1]  # still 'voiding': the next step looks again
        self._update(attempt_id, state="voided", orders=voided, error=None)
        metrics.INTERVALS_VOIDED.inc()
        log.warning(
            "interval %d: voided (no valid clearing by its end); its orders did not trade and"
            " every bid's hold is released",
            interval,
        )
        with transaction(self.ops) as c:
            alert(
                c,
                self.name,
                "IntervalVoided",
                f"interval {interval}: no valid clearing by its end; its orders did not trade"
                " and every bid's hold is released",
                interval,
            )
        return self.attempts(interval)[-1]

    def _stale_and_empty(self, interval: int) -> bool:
        """Catching up after downtime: an interval long over, with no order and no metered
        energy, needs no clearing (nothing to pay, nothing to settle); skipping it keeps the
        scheduler from spending a block on each before it reaches the present."""
        params = self.params()
        if (
            now_ms()
            < params.interval_end(interval) + self.skip_after_intervals * params.interval_ms
        ):
            return False
        if self.attempts(interval) or self.chain.is_cleared(interval):
            return False
        return not self.chain.book_len(interval) and not int(
            self.chain.query(PALLET, "MeteredCount", [interval]) or 0
        )

    def _record_skip(self, interval: int) -> dict:
        t = now_ms()
        with transaction(self.ops) as c:
            c.execute(
                "INSERT INTO clearing_attempts"
                " (interval, state, orders, created_ms, updated_ms, error)"
                " VALUES (?, 'skipped', 0, ?, ?, 'long over, no orders, nothing metered')",
                (interval, t, t),
            )
        metrics.CLEARING_ATTEMPTS.labels("skipped").inc()
        log.info("interval %d: skipped (long over, no orders, nothing metered)", interval)
        return self.attempts(interval)[-1]

    def attempts(self, interval: int) -> list[dict]:
        return [
            dict(r)
            for r in self.ops.execute(
                "SELECT * FROM clearing_attempts WHERE interval = ? ORDER BY id", (interval,)
            )
        ]

    def clear_interval(self, interval: int, *, book_at: str | None = None) -> dict:
        """Clear `interval` once. Safe to call again: it finishes or reports what was started."""
        previous = self.attempts(interval)
        last = previous[-1] if previous else None
        if last and last["state"] in ("committed", "rejected", "voided"):
            return last
        if last and last["state"] in ("signed", "submitted"):
            outcome = self._resume(last)
            if outcome is not None:
                return outcome
        if last and last["state"] == "signing":
            # Died before the extrinsic was even logged: the node never saw it.
            self._update(last["id"], state="abandoned")
        # Not started, or the started one provably never reached a block.
        if self.chain.is_cleared(interval):
            return self._adopt_existing(interval)
        return self._submit_new(interval, book_at or self.chain.finalized_hash())

    def _submit_new(self, interval: int, book_at: str) -> dict:
        book = self.chain.orders_of_interval(interval, book_at)
        orders = book_for_clearing(book)
        # The interval's mechanism is fixed in its parameters when its gate closes. The uniform
        # auction is one pool (the matcher takes no grid for it); the others follow the grid.
        mechanism = self.chain.market_params(book_at, interval=interval).mechanism
        # The grid that governs the interval: the matcher's (not under uniform) and the check's.
        grid = matcher_network(self.chain.grid(book_at, interval=interval), orders)
        network = None if mechanism == "uniform" else grid
        clearing = self.clear_fn([o.matcher_dict() for o in orders], mechanism, network)
        result = clearing.to_json_dict()
        problems = self._precheck(orders, result, grid) if self.precheck else []
        zone_prices = (
            []
            if clearing.mechanism == "uniform" and result["price"] is None
            else clearing.chain_zone_prices()
        )
        witness = clearing_witness(book, result["matches"])
        params = Chain.clearing_params(
            interval,
            clearing.mechanism,
            result["volume_wh"],
            zone_prices,
            result["matches"],
            book_orders=witness[0],
            book_traders=witness[1],
        )
        pages = self._pages(result["matches"])
        if len(pages) > 1:
            params = Chain.registration_params(
                interval,
                clearing.mechanism,
                result["volume_wh"],
                zone_prices,
                len(result["matches"]),
                len(pages),
            )
        created = now_ms()
        with transaction(self.ops) as c:
            attempt_id = c.execute(
                "INSERT INTO clearing_attempts (interval, state, mechanism, orders, volume_wh,"
                " price, matches, clearing, read_at, created_ms, updated_ms)"
                " VALUES (?, 'signing', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    interval,
                    clearing.mechanism,
                    len(orders),
                    result["volume_wh"],
                    result["price"],
                    len(result["matches"]),
                    json.dumps(result, sort_keys=True),
                    book_at,
                    created,
                    created,
                ),
            ).lastrowid
        metrics.CLEARING_ATTEMPTS.labels("signing").inc()
        if problems:
            return self._rejected(attempt_id, interval, "local check: " + "; ".join(problems))
        if heavy := self._too_heavy(interval, pages, witness):
            return self._rejected(attempt_id, interval, "local check: " + heavy)
        if len(pages) > 1:
            return self._submit_paged(attempt_id, interval, params, pages, witness)

        def log_signed(tx: PendingTx) -> None:
            # Durable before broadcast: a restart broadcasts these very bytes, never new ones.
            with transaction(self.ops) as c:
                _record_signed(c, attempt_id, tx)

        try:
            tx = self.chain.submit_nowait(
                self.operator,
                "submit_clearing",
                params,
                era_period=CLEARING_ERA,
                before_broadcast=log_signed,
            )
        except ChainError as exc:
            # The pool refused it (invalid, too heavy, ...): a verdict on this clearing.
            return self._rejected(
                attempt_id, interval, f"{exc.name}: {exc.detail}" if exc.detail else exc.name
            )
        self._update(attempt_id, state="submitted")
        log.info(
            "interval %d: clearing of %d orders submitted (%s, %d Wh, price %s) in %s",
            interval,
            len(orders),
            clearing.mechanism,
            result["volume_wh"],
            result["price"],
            tx.tx_hash,
        )
        return self._follow(attempt_id, interval, tx)

    def _submit_paged(
        self,
        attempt_id: int,
        interval: int,
        registration: dict,
        pages: list[list[dict]],
        witness: tuple[int, int, int],
    ) -> dict:
        """Registers the clearing and sends its pages, all signed and logged before the node
        sees any (`clearing_txs`), then broadcast at once: the pallet takes them in nonce order,
        and a restart broadcasts the very same bytes (`_resume`)."""
        calls = [("register_clearing", registration)]
        calls += self._page_calls(interval, pages, witness, 0)
        return self._send_paged(attempt_id, interval, calls, first_seq=0, pages=len(pages))

    @staticmethod
    def _page_calls(
        interval: int, pages: list[list[dict]], witness: tuple[int, int, int], start: int
    ) -> list[tuple[str, bytes]]:
        """`submit_clearing_page` of pages `start..`; the last carries the witness."""
        last = len(pages) - 1
        return [
            (
                "submit_clearing_page",
                Chain.clearing_page_params(interval, i, pages[i], witness if i == last else None),
            )
            for i in range(start, len(pages))
        ]

    def _send_paged(
        self,
        attempt_id: int,
        interval: int,
        calls: list[tuple[str, dict | bytes]],
        *,
        first_seq: int,
        pages: int,
    ) -> dict:
        """Signs `calls` (the attempt's extrinsics from `first_seq` on: 0 the registration, then
        a page each) with consecutive nonces, logs them all, broadcasts them, follows them."""

        def log_signed(txs: list[PendingTx]) -> None:
            # All of them, before the node sees any: a restart broadcasts these very bytes.
            with transaction(self.ops) as c:
                c.execute(
                    "DELETE FROM clearing_txs WHERE attempt_id = ? AND seq >= ?",
                    (attempt_id, first_seq),
                )
                c.executemany(
                    "INSERT INTO clearing_txs (attempt_id, seq, call, tx_hash, tx_data, nonce,"
                    " best_at_submit, mortal_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            attempt_id,
                            first_seq + i,
                            call,
                            tx.tx_hash,
                            tx.data,
                            tx.nonce,
                            tx.best_at_submit,
                            tx.mortal_until,
                        )
                        for i, ((call, _), tx) in enumerate(zip(calls, txs, strict=True))
                    ],
                )
                # The attempt's own columns name its last extrinsic, the one that applies it.
                _record_signed(c, attempt_id, txs[-1], pages=pages)

        try:
            txs = self.chain.submit_all_nowait(
                self.operator, calls, era_period=CLEARING_ERA, before_broadcast=log_signed
            )
        except ChainError as exc:
            # The pool refused one: a verdict on this clearing. Those before it fail on chain
            # or, a registration left without its pages, are rejected at the interval's end.
            detail = f"{exc.name}: {exc.detail}" if exc.detail else exc.name
            return self._rejected(attempt_id, interval, detail)
        self._update(attempt_id, state="submitted")
        log.info(
            "interval %d: clearing in %d pages, extrinsics %d to %d submitted (%s ... %s)",
            interval,
            pages,
            first_seq,
            first_seq + len(txs) - 1,
            txs[0].tx_hash,
            txs[-1].tx_hash,
        )
        return self._follow_all(attempt_id, interval, txs)

    def _send_missing_pages(self, attempt_id: int, interval: int) -> dict | None:
        """After a page was dropped (a restarted node lost its pool, say): if this attempt's
        registration still stands, its first pages verified, the rest are signed again with
        fresh nonces and sent. The pallet takes the registrant's pages late unless another
        submitter took the interval over, so the deposit is not lost to a new registration.
        None when no registration of this attempt stands."""
        live = self.chain.pending_clearing(interval)
        row = next(a for a in self.attempts(interval) if a["id"] == attempt_id)
        if live is None or live["submitter"] != self.operator.ss58_address:
            return None
        result = json.loads(row["clearing"])
        pages = self._pages(result["matches"])
        claim = (len(pages), len(result["matches"]), result["volume_wh"])
        if (live["pages"], live["matches"], live["volume_wh"]) != claim:
            return None  # another attempt's registration
        book = self.chain.orders_of_interval(interval, row["read_at"])
        witness = clearing_witness(book, result["matches"])
        start = live["verified_pages"]
        log.warning(
            "interval %d: its registration stands with %d of %d pages verified; sending the"
            " rest again",
            interval,
            start,
            len(pages),
        )
        calls = self._page_calls(interval, pages, witness, start)
        return self._send_paged(attempt_id, interval, calls, first_seq=start + 1, pages=len(pages))

    def _follow_all(self, attempt_id: int, interval: int, txs: list[PendingTx]) -> dict:
        """Follows a paged clearing's extrinsics to their blocks; the first that failed (a
        registration refused, a page rejected) decides, or else the last, which applied it."""
        try:
            receipts = self.chain.wait(
                txs, finality=self.finality, timeout_s=self.timeout_s + 2 * len(txs)
            )
        except ChainError as exc:
            if exc.name != "Dropped":
                raise
            self._update(attempt_id, state="dropped", error=str(exc))
            log.warning("interval %d: a page of its clearing was dropped: %s", interval, exc)
            if self.chain.is_cleared(interval):
                return self._adopt_existing(interval)
            resumed = self._send_missing_pages(attempt_id, interval)
            if resumed is not None:
                return resumed
            # No registration of ours stands (it was dropped too, or taken over): a fresh
            # attempt, which is no blind retry since nothing of this one is on chain.
            return self.clear_interval(interval)
        failed = [r for r in receipts if not r.success]
        if failed:
            seq = receipts.index(failed[0])
            log.error(
                "interval %d: clearing %s failed at its %s",
                interval,
                failed[0].tx_hash,
                "registration" if seq == 0 else f"page {seq - 1}",
            )
        decisive = failed[0] if failed else receipts[-1]
        return self._record_receipt(attempt_id, interval, decisive)

    def _follow(self, attempt_id: int, interval: int, tx: PendingTx) -> dict:
        try:
            receipt = self.chain.wait([tx], finality=self.finality, timeout_s=self.timeout_s)[0]
        except ChainError as exc:
            if exc.name == "Dropped":
                self._update(attempt_id, state="dropped", error=str(exc))
                log.warning(
                    "interval %d: clearing %s was dropped before inclusion", interval, tx.tx_hash
                )
                # Never included, so nothing was decided: a fresh attempt is not a blind retry.
                return self.clear_interval(interval)
            raise
        return self._record_receipt(attempt_id, interval, receipt)

    def _record_receipt(self, attempt_id: int, interval: int, receipt: Receipt) -> dict:
        if receipt.success:
            latency = now_ms() - self.params().gate_closure(interval)
            self._update(
                attempt_id,
                state="committed",
                block_hash=receipt.block_hash,
                block_number=receipt.block_number,
                extrinsic_index=receipt.extrinsic_index,
                commit_latency_ms=latency,
                error=None,
            )
            metrics.cleared(interval)
            metrics.CLEARING_COMMIT_LATENCY.observe(max(0, latency) / 1000)
            log.info(
                "interval %d: clearing committed in block #%d (%s), extrinsic %d,"
                " %.1f s after gate closure",
                interval,
                receipt.block_number,
                receipt.block_hash,
                receipt.extrinsic_index,
                latency / 1000,
            )
            return self.attempts(interval)[-1]
        name = receipt.error.name if receipt.error else "ExtrinsicFailed"
        self._update(
            attempt_id,
            block_hash=receipt.block_hash,
            block_number=receipt.block_number,
            extrinsic_index=receipt.extrinsic_index,
        )
        return self._rejected(attempt_id, interval, name)

    @staticmethod
    def _precheck(orders: list[ChainOrder], result: dict, grid: dict | None) -> list[str]:
        """What the chain would refuse in this clearing, by the chain's rules against the book
        and the interval's grid (`matcher.verify`), at most three. A clearing the chain refuses
        costs the submitter its deposit, so one that fails here is never submitted."""
        import matcher

        book = matcher.book_from_orders([o.matcher_dict() for o in orders])
        found = matcher.verify(book, result, matcher.as_network(grid))
        return [str(v) for v in found[:3]]

    def _pages(self, matches: list[dict]) -> list[list[dict]]:
        """The clearing's matches in the pages it is sent in (the same ones every time)."""
        page_size = min(self.page_matches or 2**32, self.chain.max_matches_per_page())
        return clearing_pages(matches, page_size, self.chain.book_page_size())

    def _too_heavy(
        self, interval: int, pages: list[list[dict]], witness: tuple[int, int, int]
    ) -> str | None:
        """Why the call that applies this clearing cannot fit a block, or None. That call (the
        last page, or `submit_clearing`) is priced as the whole clearing by the book's orders
        and traders and its matches (`witness`), as the runtime says. Checked before anything is
        signed: the pool would refuse it, but only after the registration and the pages before
        it had landed, and the deposit they hold would be burned at the interval's end."""
        last = Chain.clearing_page_params(interval, len(pages) - 1, pages[-1][:1], witness)
        need = self.chain.raw_call_ref_time("submit_clearing_page", last)
        allowed = self.chain.max_call_ref_time()
        if need <= allowed:
            return None
        orders, traders, matches = witness
        return (
            f"applying {matches} matches between {traders} traders of a book of {orders} orders"
            f" takes {need / 1e9:.0f} ms of weight, more than the {allowed / 1e9:.0f} ms a"
            " block allows one call; not registered (the interval is voided at its end and"
            " every hold released)"
        )

    def _rejected(self, attempt_id: int, interval: int, error: str) -> dict:
        self._update(attempt_id, state="rejected", error=error)
        log.error(
            "ALERT interval %d: its clearing was rejected: %s"
            " (not retried; voided at the interval's end unless cleared before)",
            interval,
            error,
        )
        with transaction(self.ops) as c:
            alert(c, self.name, "ClearingRejected", f"interval {interval}: {error}", interval)
        return self.attempts(interval)[-1]

    def _resume(self, attempt: dict) -> dict | None:
        """A previous run signed (and maybe broadcast) a clearing: find out what became of it.
        Returns the outcome, or None when that extrinsic provably never made it into a block."""
        interval = attempt["interval"]
        logged = self.ops.execute(
            "SELECT * FROM clearing_txs WHERE attempt_id = ? ORDER BY seq", (attempt["id"],)
        ).fetchall()
        if logged:
            return self._resume_paged(attempt, [dict(r) for r in logged])
        tx = self._logged_tx(attempt, "submit_clearing")
        log.info("interval %d: resuming clearing %s from a previous run", interval, tx.tx_hash)
        try:
            self.chain.broadcast(tx)  # the same bytes: at most one of them can ever be included
        except ChainError as exc:
            log.info(
                "interval %d: re-broadcast refused (%s); following it on chain",
                interval,
                exc.detail,
            )
        self._update(attempt["id"], state="submitted")
        try:
            receipt = self.chain.wait([tx], finality=self.finality, timeout_s=self.timeout_s + 60)[
                0
            ]
        except ChainError as exc:
            if exc.name != "Dropped":
                raise
            self._update(attempt["id"], state="dropped", error=str(exc))
            if self.chain.is_cleared(interval):
                return self._adopt_existing(interval)
            return None
        return self._record_receipt(attempt["id"], interval, receipt)

    def _logged_tx(self, row: dict, call: str) -> PendingTx:
        """A signed extrinsic as ops.db logged it (an attempt's row or one of `clearing_txs`)."""
        return PendingTx(
            tx_hash=row["tx_hash"],
            signer=self.operator.ss58_address,
            nonce=row["nonce"],
            call=f"{PALLET}.{call}",
            data=row["tx_data"],
            best_at_submit=row["best_at_submit"],
            mortal_until=row["mortal_until"],
        )

    def _resume_paged(self, attempt: dict, logged: list[dict]) -> dict | None:
        """`_resume` for a clearing sent in pages: every logged extrinsic, re-broadcast as
        signed, then followed like the first time."""
        interval = attempt["interval"]
        txs = [self._logged_tx(row, row["call"]) for row in logged]
        log.info("interval %d: resuming a clearing of %d extrinsics", interval, len(txs))
        for tx in txs:
            try:
                self.chain.broadcast(tx)
            except ChainError as exc:
                log.info("interval %d: re-broadcast of %s refused (%s)", interval, tx.tx_hash, exc)
        self._update(attempt["id"], state="submitted")
        outcome = self._follow_all(attempt["id"], interval, txs)
        return None if outcome["state"] == "dropped" else outcome

    def _adopt_existing(self, interval: int) -> dict:
        """The interval is cleared on chain by an attempt we did not see land: record that."""
        summary = self.chain.clearing(interval)
        block_hash = self.chain.block_hash(summary.block_number)
        extrinsic_index = None
        for event in self.chain.events(block_hash):
            if (
                event.pallet == PALLET
                and event.name == "ClearingAccepted"
                and int(event.attributes["interval"]) == interval
            ):
                extrinsic_index = event.extrinsic_index
        created = now_ms()
        with transaction(self.ops) as c:
            c.execute(
                "INSERT INTO clearing_attempts (interval, state, mechanism, volume_wh, matches,"
                " block_hash, block_number, extrinsic_index, created_ms, updated_ms, error)"
                " VALUES (?, 'committed', ?, ?, ?, ?, ?, ?, ?, ?, 'already cleared on chain')",
                (
                    interval,
                    summary.mechanism,
                    summary.volume_wh,
                    summary.match_count,
                    block_hash,
                    summary.block_number,
                    extrinsic_index,
                    created,
                    created,
                ),
            )
        metrics.CLEARING_ATTEMPTS.labels("committed").inc()
        metrics.cleared(interval)
        log.info(
            "interval %d: already cleared on chain in block #%d", interval, summary.block_number
        )
        return self.attempts(interval)[-1]

    def _update(self, attempt_id: int, **fields) -> None:
        fields["updated_ms"] = now_ms()
        names = ", ".join(f"{k} = ?" for k in fields)
        with transaction(self.ops) as c:
            c.execute(
                f"UPDATE clearing_attempts SET {names} WHERE id = ?", (*fields.values(), attempt_id)
            )
        if "state" in fields:
            metrics.CLEARING_ATTEMPTS.labels(fields["state"]).inc()


__all__ = ["Scheduler", "book_for_clearing", "clearing_pages", "default_clear", "matcher_network"]
