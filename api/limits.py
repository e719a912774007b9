"""A limit on request bodies, enforced while they arrive (never buffered whole).

A declared Content-Length above the limit is refused at once, before the app runs; a body sent
without one (chunked) is counted as it streams in, and the read that passes the limit fails.
Either way the answer is 413 BodyTooLarge in the API's error shape.

One limit for every path (`max_body_bytes`), except where a path is given its own: POST
/orders/batch takes `max_batch_orders` orders of up to ORDER_MAX_BYTES each
(`batch_body_bytes`), when that is more."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from market.settings import Settings

from .errors import send_error

# Room for one order in a batch: the largest valid order (every integer at its largest, a 0x
# owner, Python's default ", " and ": " separators) is 454 bytes of JSON.
ORDER_MAX_BYTES = 512
BATCH_PATH = "/orders/batch"


def batch_body_bytes(settings: Settings) -> int:
    """The body limit of POST /orders/batch: max_body_bytes, or more when max_batch_orders of
    the largest orders (and the envelope around them) would not fit in it."""
    return max(settings.max_body_bytes, 1_024 + settings.max_batch_orders * ORDER_MAX_BYTES)


class BodyTooLarge(HTTPException):
    """Raised by a read that passes the limit. An HTTPException, so that FastAPI's body reading
    lets it through to the handler of api/errors.py (413 BodyTooLarge)."""

    def __init__(self, limit: int):
        # The rest of the body is not read: the connection closes after the answer.
        super().__init__(
            413, f"request body larger than {limit} bytes", headers={"connection": "close"}
        )


class BodyLimit:
    """ASGI middleware: at most `max_bytes` of request body, or `paths[path]` on those paths."""

    def __init__(self, app: ASGIApp, max_bytes: int, paths: dict[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.paths = dict(paths or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope.get("path", ""), self.max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(send, limit)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:  # read outside a route that handles it (e.g. a mounted app)
            if started:
                raise
            await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        detail = f"request body larger than {limit} bytes"
        await send_error(send, 413, "BodyTooLarge", detail, {"connection": "close"})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed one itself
    return None


__all__ = ["BATCH_PATH", "ORDER_MAX_BYTES", "BodyLimit", "BodyTooLarge", "batch_body_bytes"]
