"""The API's Prometheus metrics (served at `GET /metrics` by api/routes/metrics.py): orders and
cancels accepted and refused by reason, and the link to the node. The order log's commit
latency is measured where the log commits (store/orderlog.py) and served here too.

Refusals are counted from the answers themselves: `OrderOutcomes` watches `POST /orders` and
`DELETE /orders/{owner}/{id}`, and the error handlers of api/errors.py note each answer's
reason in the request scope (`note_error`) for it to read."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import Counter, Gauge
from prometheus_client.multiprocess import mark_process_dead
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The scope key under which the error handlers leave an answer's reason for OrderOutcomes.
OUTCOME_KEY = "wattchain.outcome"

ORDERS_ACCEPTED = Counter(
    "wattchain_orders_accepted_total",
    "Orders the API answered 202 (logged for relay; a replay of a logged order included)",
)
ORDERS_REFUSED = Counter(
    "wattchain_orders_refused_total",
    "Orders the API refused, by the reason of its answer (BadSignature, GateClosed, ...)",
    ["reason"],
)
CANCELS_ACCEPTED = Counter(
    "wattchain_cancels_accepted_total", "Cancels the API answered 202 (logged for relay)"
)
CANCELS_REFUSED = Counter(
    "wattchain_cancels_refused_total",
    "Cancels the API refused, by the reason of its answer",
    ["reason"],
)
NODE_REACHABLE = Gauge(
    "wattchain_api_node_reachable",
    "1 while the API reads the node, 0 while it serves the last values it read",
    multiprocess_mode="livemin",  # several API processes: 0 when any of them cannot read it
)
STALE_ANSWERS = Counter(
    "wattchain_api_stale_reads_total",
    "Chain values the API served from its cache because the node did not answer in time",
)


def forget_dead_processes(directory: Path) -> None:
    """Drops the live gauges of the API's processes that died (killed, and replaced by uvicorn):
    with several processes each keeps its gauges in files of its own, and a dead one's would be
    read as live for good, `wattchain_api_node_reachable` held at its last value. Counters stay:
    what a dead process counted was counted. Each process calls this as it starts."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(directory))
        except PermissionError:
            pass  # alive, someone else's: a pid reused since


def order_accepted() -> None:
    ORDERS_ACCEPTED.inc()


def order_refused(reason: str) -> None:
    ORDERS_REFUSED.labels(reason=reason).inc()


def note_error(scope: Scope, reason: str) -> None:
    """Called by the error handlers: the reason of the answer being sent."""
    holder = scope.get(OUTCOME_KEY)
    if holder is not None:
        holder["error"] = reason


def _kind(scope: Scope) -> str | None:
    method, path = scope.get("method"), scope.get("path", "")
    if method == "POST" and path.rstrip("/") == "/orders":
        return "order"
    if method == "DELETE" and path.startswith("/orders/"):
        return "cancel"
    return None


class OrderOutcomes:
    """ASGI middleware: counts each order and cancel request by its answer. Add it outermost,
    so that a body refused by BodyLimit (413) counts too."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = _kind(scope) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        holder: dict = {}
        scope[OUTCOME_KEY] = holder
        status = 500

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except BaseException:
            _count(kind, 500, "InternalError")
            raise
        _count(kind, status, holder.get("error"))


def _count(kind: str, status: int, reason: str | None) -> None:
    from .errors import HTTP_REASONS  # errors.py imports this module

    if status < 300:
        (ORDERS_ACCEPTED if kind == "order" else CANCELS_ACCEPTED).inc()
        return
    reason = reason or HTTP_REASONS.get(status) or f"HTTP{status}"
    (ORDERS_REFUSED if kind == "order" else CANCELS_REFUSED).labels(reason=reason).inc()


__all__ = [
    "CANCELS_ACCEPTED",
    "CANCELS_REFUSED",
    "NODE_REACHABLE",
    "ORDERS_ACCEPTED",
    "ORDERS_REFUSED",
    "STALE_ANSWERS",
    "OrderOutcomes",
    "note_error",
    "order_accepted",
    "order_refused",
]
