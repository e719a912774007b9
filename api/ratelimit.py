"""Rate limits: per client (its IP address, every request) and per participant (orders and
cancels of one owner), each answered with 429 RateLimited and Retry-After.

The participant's limit counts only orders whose signature has verified: a forged request in
someone's name cannot spend that participant's quota. The client's limit is an ASGI middleware,
so a flood is refused before its body is read. Counts are kept by the `limits` library in this
process's memory (sliding windows): with several API processes, each one counts its own.
"""

from __future__ import annotations

import math
import threading
import time

from limits import RateLimitItem, parse, storage, strategies
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import APIError, send_error


def parse_limit(text: str | None) -> RateLimitItem | None:
    """ "100/second", "6000/minute"...; None: no limit. ValueError names a malformed one."""
    return None if text is None else parse(text)


class RateLimits:
    def __init__(self, client: str | None, participant: str | None):
        self.client = parse_limit(client)
        self.participant = parse_limit(participant)
        self._limiter = strategies.SlidingWindowCounterRateLimiter(storage.MemoryStorage())
        # The event loop (client) and the request threads (participant) count at once, and
        # MemoryStorage is not thread-safe: two hits starting its expiry timer together make
        # one fail ("threads can only be started once", a 500).
        self._lock = threading.Lock()

    def _hit(self, item: RateLimitItem, *key: str) -> bool:
        with self._lock:
            return self._limiter.hit(item, *key)

    def _retry_after_s(self, item: RateLimitItem, *key: str) -> int:
        with self._lock:
            reset = self._limiter.get_window_stats(item, *key).reset_time
        return max(1, math.ceil(reset - time.time()))

    def client_refusal(self, host: str) -> tuple[int, str] | None:
        """(Retry-After s, detail) when the client at `host` is over its limit, else None."""
        if self.client is None or self._hit(self.client, "client", host):
            return None
        return (
            self._retry_after_s(self.client, "client", host),
            f"client {host} is over its limit of {self.client} requests",
        )

    def take_order(self, owner: str) -> None:
        """Count one order or cancel of `owner` (signature verified); 429 when over the limit."""
        if self.participant is None or self._hit(self.participant, "participant", owner):
            return
        raise APIError(
            429,
            "RateLimited",
            f"{owner} is over its limit of {self.participant} orders and cancels",
            retry_after_s=self._retry_after_s(self.participant, "participant", owner),
        )


class ClientRateLimit:
    """ASGI middleware: the per-client limit, before the request's body is read."""

    def __init__(self, app: ASGIApp, limits: RateLimits):
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limits.client is None:
            await self.app(scope, receive, send)
            return
        host = (scope.get("client") or ("unknown", 0))[0]
        refused = self.limits.client_refusal(host)
        if refused is None:
            await self.app(scope, receive, send)
            return
        retry_after, detail = refused
        await send_error(send, 429, "RateLimited", detail, {"retry-after": str(retry_after)})
