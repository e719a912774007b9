"""Back-pressure: the API refuses an order that the relayer could not get on chain before its
gate, instead of acknowledging it and letting it miss the gate (issue: "back-pressure, not
silent loss").

An order acknowledged now waits behind every log entry not yet on chain (orders and cancels,
pending or in flight). The relayer puts at most `relay_batch` x `relay_in_flight` entries into
one block, and fewer when the chain or the node is slower: its pace is measured as the head of
the backlog (the lowest seq not yet relayed) moving over the last `window_s`, while a backlog
lasted. An order behind `n` entries waits floor(n / per_block) blocks for them to drain, then
what any order waits for a block: the API's `order_margin_ms` (default 6 s, three blocks: the
block being built, the next, and one of slack, since a batch can wait a block more in the pool
and an order late by one block is lost). When that is later than its gate, POST /orders (and
a cancel) answers 503 RelayBacklog with Retry-After (when the backlog should have drained) and
names the first interval it would reach in time; so does an order that waited for the log's
write lock past the last moment it could be logged (the log checks that moment under the
lock). With less than a block's worth ahead this is the GateClosed check exactly, so `/market`'s
`next_open_interval` meets no 503 from an idle relayer.

The backlog is counted in the log at most every `refresh_s`, and between counts this process
adds what it appended itself, so a burst (a batch, many workers) is seen at once by the process
that takes it and within `refresh_s` by the others.
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
from store.orderlog import Appended

from .errors import APIError


class RelayQueue:
    def __init__(self, settings: Settings, *, refresh_s: float = 0.25, window_s: float = 10.0):
        self.per_block = settings.relay_batch * settings.relay_in_flight
        self.margin_ms = settings.order_margin_ms
        self.refresh_s = refresh_s
        self.window_s = window_s
        self._lock = threading.Lock()
        self._counted = 0
        self._counted_at = -math.inf
        self._added = 0
        self._heads: deque[tuple[float, int]] = deque()  # (when, head seq) while backlogged

    def ahead(self, log: OrderLog) -> int:
        """Entries an order appended now would wait behind."""
        with self._lock:
            stale = time.monotonic() - self._counted_at > self.refresh_s
        if stale:
            counted, head = log.unrelayed()
            now = time.monotonic()
            with self._lock:
                self._counted, self._counted_at, self._added = counted, now, 0
                if head is None:
                    self._heads.clear()  # no backlog: nothing to measure the pace by
                else:
                    self._heads.append((now, head))
                    while self._heads and now - self._heads[0][0] > self.window_s:
                        self._heads.popleft()
        with self._lock:
            return self._counted + self._added

    def pace_per_s(self) -> float | None:
        """Orders relayed per second while a backlog lasted (over at least 3 s), or None."""
        with self._lock:
            if len(self._heads) < 2:
                return None
            (t0, h0), (t1, h1) = self._heads[0], self._heads[-1]
        if t1 - t0 < 3 or h1 <= h0:
            return None  # too short to tell, or stalled (a node restart): not a pace
        return (h1 - h0) / (t1 - t0)

    def drain_ms(self, ahead: int, block_ms: int) -> int:
        """How long the relayer needs to get `ahead` entries on chain, at its pace."""
        per_block: float = self.per_block
        pace = self.pace_per_s()
        if pace is not None:
            per_block = max(1.0, min(per_block, pace * block_ms / 1000))
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
