"""Back-pressure: the API refuses an order that the relayer could not get on chain before its
gate, instead of acknowledging it and letting it miss the gate (issue: "back-pressure, not
silent loss").

An order acknowledged now waits behind every log entry not yet on chain (orders and cancels,
pending or in flight). How fast that backlog drains is measured from what reached the chain: the
entries the relayer marked on chain over the last `window_s` while a backlog lasted, block by
block, per second. Entries the chain refused or the relayer dropped as past their gate leave the
backlog too, but they are not pace: counting them (as the backlog's moving head did) let a
relayer that was dropping late orders look fast, so the API took more orders that then missed
their gate. Orders are promised 80 % of that pace (PACE_HEADROOM), at most `relay_batch` x
`relay_in_flight` a block (the most the relayer sends), and before anything has been measured one
batch a block (see `drain_ms`).

An order behind `n` entries waits floor(n / per_block) blocks for them to drain, then what any
order waits for a block: the API's `order_margin_ms` (default 6 s, three blocks: the block being
built, the next, and one of slack, since a batch can wait a block more in the pool and an order
late by one block is lost). When that is later than its gate, POST /orders (and a cancel)
answers 503 RelayBacklog with Retry-After (when the backlog should have drained) and names the
first interval it would reach in time; so does an order that waited for the log's write lock
past the last moment it could be logged (the log checks that moment under the lock). With less
than a block's worth ahead this is the GateClosed check exactly, so `/market`'s
`next_open_interval` meets no 503 from an idle relayer.

The backlog is read from the log at most every `refresh_s` (its pace at most every second), and
between reads this process adds what it appended itself, so a burst (a batch, many workers) is
seen at once by the process that takes it and within `refresh_s` by the others.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from market import MarketParams, now_ms
from market.settings import Settings
from store import OrderLog
from store.orderlog import Appended, Landing, Unrelayed

from .errors import APIError

# The share of the measured pace an order is promised. The pace a loaded node keeps swings from
# one window to the next, and it drops when a burst takes the CPU it shares: under `make
# loadtest` (2 cores) 235 entries/s over 12 s fell to 170/s over the next 12 as the API took a
# burst, and orders taken at the first pace reached the chain in the last block before their gate.
PACE_HEADROOM = 0.8


class RelayQueue:
    def __init__(
        self,
        settings: Settings,
        *,
        refresh_s: float = 0.25,
        window_s: float = 10.0,
        min_span_s: float = 4.0,
    ):
        self.most_per_block = settings.relay_batch * settings.relay_in_flight
        self.batch = settings.relay_batch
        self.margin_ms = settings.order_margin_ms
        self.refresh_s = refresh_s
        self.window_ms = int(window_s * 1000)
        self.min_span_ms = int(min_span_s * 1000)
        self._lock = threading.Lock()
        self._counted = 0
        self._counted_at = -math.inf
        self._added = 0
        # (unix ms, the log's unrelayed() then) at each read while the backlog lasted, over the
        # window: where the landings since are counted from.
        self._marks: deque[tuple[int, Unrelayed]] = deque()
        self._pace: float | None = None  # entries/s on chain over the window, None: too short
        self._paced_at = -math.inf
        self._last_pace: float | None = None  # the last one measured, kept across backlogs

    def ahead(self, log: OrderLog) -> int:
        """Entries an order appended now would wait behind."""
        with self._lock:
            stale = time.monotonic() - self._counted_at > self.refresh_s
        if stale:
            self._refresh(log)
        with self._lock:
            return self._counted + self._added

    def _refresh(self, log: OrderLog) -> None:
        at = now_ms()  # before the read: what lands after it was waiting at the read or later
        unrelayed = log.unrelayed()
        with self._lock:
            if not unrelayed.waiting:
                self._marks.clear()  # no backlog: what lands now is what arrives, not a pace
            else:
                self._marks.append((at, unrelayed))
                while len(self._marks) > 1 and at - self._marks[1][0] >= self.window_ms:
                    self._marks.popleft()
            since_ms, since = self._marks[0] if self._marks else (at, unrelayed)
            # The pace moves by blocks (2 s): reading the window's landings (a row per entry)
            # once a second is enough, and keeps that read off most refreshes.
            measure = not unrelayed.waiting or time.monotonic() - self._paced_at >= 1.0
        pace = None
        if measure:
            if unrelayed.waiting:
                landed = log.landed(since_ms, since.order_from, since.cancel_from)
                pace = self._measure(landed, since_ms, now_ms())
        with self._lock:
            self._counted, self._counted_at, self._added = unrelayed.waiting, time.monotonic(), 0
            if measure:
                self._pace, self._paced_at = pace, time.monotonic()
                if pace:
                    self._last_pace = pace

    def _measure(self, landed: list[Landing], since_ms: int, now: int) -> float | None:
        """Entries per second on chain since `since_ms`, with a backlog all along; None when
        that is too short to tell. The entries of the first block seen are left out and the
        time runs from it to now: a whole number of blocks' entries over at least as long,
        so the pace is never overstated by where the window's edges fall between blocks."""
        if not landed:
            # A backlog longer than an order's margin with nothing on chain: stalled (a node
            # restart, a relayer paused). Nothing can be promised until blocks land again.
            return 0.0 if now - since_ms >= max(self.margin_ms, self.min_span_ms) else None
        first = landed[0].at_ms
        if now - first < self.min_span_ms:
            return None
        return sum(landing.entries for landing in landed[1:]) * 1000 / (now - first)

    def pace_per_s(self) -> float | None:
        """Entries per second the relayer got on chain while a backlog lasted, as last measured
        (0: stalled), or None before any measurement."""
        with self._lock:
            return self._pace if self._pace is not None else self._last_pace

    def drain_ms(self, ahead: int, block_ms: int) -> int:
        """How long the relayer needs to get `ahead` entries on chain, at its pace."""
        pace = self.pace_per_s()
        if pace is None:
            # Nothing measured yet (a fresh API, or no backlog ever lasted long enough): assume
            # one batch a block, not the batches in flight. The chain, not the relayer, sets the
            # pace when it is busy (a slow or loaded node takes fewer than batch x in-flight a
            # block), and an order taken on an optimistic guess is lost at its gate, while one
            # refused on a cautious guess is sent again; the real pace replaces this within
            # seconds of a backlog.
            per_block: float = self.batch
        else:
            per_block = pace * PACE_HEADROOM * block_ms / 1000
        per_block = max(1.0, min(self.most_per_block, per_block))
        return int(ahead // per_block) * block_ms  # whole blocks' worth before this entry's

    def append_in_time(
        self,
        log: OrderLog,
        params: MarketParams,
        block_ms: int,
        interval: int,
        append: Callable[[int], Appended],
    ) -> Appended:
        """Log an order or a cancel for `interval` with `append(not_after_ms)` only if it can
        still reach the chain before the gate, behind the backlog: 503 RelayBacklog when it
        cannot now, or when it waited for the log's write lock past the moment it could."""
        now = now_ms()
        ahead = self.ahead(log)
        drain = self.drain_ms(ahead, block_ms)
        eta = self.margin_ms + drain  # the margin is an empty backlog's time to a block
        gate = params.gate_closure(interval)
        if now + eta < gate:
            appended = append(gate - eta)
            if appended.outcome != "late":
                if appended.outcome == "new":
                    with self._lock:
                        self._added += 1
                return appended
        raise APIError(
            503,
            "RelayBacklog",
            f"{ahead} orders and cancels wait to be relayed, about {drain} ms of blocks: an "
            f"order for interval {interval} would reach the chain after its gate ({gate} ms, "
            f"unix). The first interval it would reach in time is "
            f"{params.first_open_interval(now, eta)}",
            retry_after_s=max(1, math.ceil(drain / 1000)),
        )
