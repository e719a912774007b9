"""Back-pressure: the API refuses an order that the relayer could not get on chain before its
gate, instead of acknowledging it and letting it miss the gate (issue: "back-pressure, not
silent loss").

An order acknowledged now waits behind every log entry not yet on chain (orders and cancels,
pending or in flight). The relayer puts at most `relay_batch` x `relay_in_flight` entries into
one block, so an order behind `n` entries is in a block about ceil((n + 1) / per_block) + 1
block times from now (the + 1: the block being built when it is sent). When that is later than
its gate, POST /orders answers 503 RelayBacklog with Retry-After (when the backlog should have
drained) and names the first interval it would reach in time. With no backlog that is two block
times, which the API's `order_margin_ms` (checked first, GateClosed) already covers.

The backlog is counted in the log at most every `refresh_s`, and between counts this process
adds what it appended itself, so a burst (a batch, many workers) is seen at once by the process
that takes it and within `refresh_s` by the others.
"""

from __future__ import annotations

import math
import threading
import time

from market import MarketParams
from market.settings import Settings
from store import OrderLog

from .errors import APIError


class RelayQueue:
    def __init__(self, settings: Settings, *, refresh_s: float = 0.25):
        self.per_block = settings.relay_batch * settings.relay_in_flight
        self.margin_ms = settings.order_margin_ms
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._counted = 0
        self._counted_at = -math.inf
        self._added = 0

    def ahead(self, log: OrderLog) -> int:
        """Entries an order appended now would wait behind."""
        with self._lock:
            stale = time.monotonic() - self._counted_at > self.refresh_s
        if stale:
            counted = log.unrelayed()
            with self._lock:
                self._counted, self._counted_at, self._added = counted, time.monotonic(), 0
        with self._lock:
            return self._counted + self._added

    def appended(self, n: int = 1) -> None:
        with self._lock:
            self._added += n

    def eta_ms(self, ahead: int, block_ms: int) -> int:
        """How long until an order behind `ahead` entries is in a block."""
        return (math.ceil((ahead + 1) / self.per_block) + 1) * block_ms

    def check(
        self, log: OrderLog, params: MarketParams, block_ms: int, interval: int, now_ms: int
    ) -> None:
        """Raise 503 RelayBacklog when an order for `interval` logged now would reach the chain
        after its gate. (Without a backlog the API's order margin, checked before, covers the
        relay time.)"""
        ahead = self.ahead(log)
        eta = self.eta_ms(ahead, block_ms)
        gate = params.gate_closure(interval)
        if now_ms + eta < gate:
            return
        raise APIError(
            503,
            "RelayBacklog",
            f"{ahead} orders and cancels wait to be relayed, about {eta} ms of blocks: an order "
            f"for interval {interval} would reach the chain after its gate ({gate} ms, unix). "
            "The first interval it would reach in time is "
            f"{params.first_open_interval(now_ms, max(eta, self.margin_ms))}",
            retry_after_s=max(1, math.ceil(eta / 1000)),
        )
