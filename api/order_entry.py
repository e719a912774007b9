"""POST /orders answered directly: the one request of the API that comes a thousand times a
second (issue 11), without the framework's machinery per request.

Profiled under load (py-spy, samples holding the GIL), the intake's own checks were 10 % of
the API's time; FastAPI and Starlette's routing, dependency injection, thread hand-off and
answer validation took about half. `DirectOrderEntry` sits inside the API's own middleware
(body limit, rate limit, outcome counting: all still apply) and answers a well-formed order
itself, with the same checks, the same answers and the same counts.

What it does not take it passes on, untouched, to the route in api/routes/orders.py, which
stays the operation's definition in the schema: a body that is not JSON, or not a valid
`OrderCreate`, so that every 400 and 422 is the framework's own, word for word.

The orders it takes are admitted in groups by a few threads (`OrderQueue`): a thread takes
whatever arrived while it was admitting and committing its last group. A thread per request had
each order wake a worker, wait for the group commit on a condition and wake the event loop:
the kernel's task switching was 38 % of the API's CPU (perf). A group is judged as a batch is
(`admit_together`: each order as if POSTed alone after the ones before it, one commit for all),
so one thread hand-off and one wake of the loop serve the whole group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import State
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chain import ChainUnavailable

from . import intake
from .deps import index_of, order_log_of
from .errors import APIError, error_answer, retry_headers
from .metrics import note_error
from .models import OrderAccepted, OrderCreate

log = logging.getLogger(__name__)

PATH = "/orders"
# The most orders admitted as one group: it holds the log's write lock while it is judged, and
# the process's other writers (cancels, batches) and the other API processes wait for it.
MAX_GROUP = 100
# Threads that admit groups. One alone spent a third of its time waiting for the commit's fsync
# and for the node's answer to a balance read (py-spy, under `make loadtest`): with three, one
# group's reads and checks go on while another's commit is written, and a slow read of the
# node holds up only its own group.
INTAKE_THREADS = 3


class OrderQueue:
    """Orders read by the direct path, admitted in groups by INTAKE_THREADS threads (see the
    module's docstring). `place` gives an order's 202 answer or raises what refuses it."""

    def __init__(self, state: State):
        self.state = state
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name="order-intake", daemon=True)
            for _ in range(INTAKE_THREADS)
        ]

    def start(self) -> OrderQueue:
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)  # each thread stops at one, after the orders before it
        for thread in self._threads:
            thread.join(timeout=10)

    async def place(self, order: OrderCreate) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._queue.put((order, answer, loop))
        return await answer

    def _run(self) -> None:
        orders, index = order_log_of(self.state), index_of(self.state)
        stopping = False
        while not stopping:
            item = self._queue.get()
            group = []
            while item is not None:
                group.append(item)
                if len(group) == MAX_GROUP:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            if not group:
                continue
            try:
                outcomes = self._admit([order for order, _, _ in group], orders, index)
            except Exception as exc:  # a fault outside any order's checks: this group's 500s
                log.exception("admitting a group of orders failed")
                outcomes = [exc] * len(group)
            loops: dict[asyncio.AbstractEventLoop, list] = {}
            for (_, answer, loop), outcome in zip(group, outcomes, strict=True):
                loops.setdefault(loop, []).append((answer, outcome))
            for loop, settled in loops.items():  # one wake of each loop for the group
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # the loop has closed: nobody waits for these answers
                    pass

    def _admit(self, group: list[OrderCreate], orders, index) -> list[dict | Exception]:
        state = self.state
        checked: list[intake.VerifiedOrder | Exception] = []
        for order in group:
            try:
                checked.append(intake.verified(order, state.chain, state.guards))
            except Exception as exc:
                checked.append(exc)
        verified = [order for order in checked if isinstance(order, intake.VerifiedOrder)]
        try:
            admitted = iter(
                intake.admit_together(
                    verified, state.chain, orders, state.guards, index, state.settings
                )
            )
        except Exception as exc:  # the group as a whole: the node never reached, a failed commit
            return [order if isinstance(order, Exception) else exc for order in checked]
        return [
            next(admitted) if isinstance(order, intake.VerifiedOrder) else order
            for order in checked
        ]


def _settle(settled: list[tuple[asyncio.Future, dict | Exception]]) -> None:
    for answer, outcome in settled:
        if answer.done():  # its client went away
            continue
        if isinstance(outcome, Exception):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)


class DirectOrderEntry:
    """ASGI middleware: POST /orders with a JSON body that is a valid order, answered here; any
    other request goes on to the app. Add it innermost (first)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == PATH
            and _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        order = _valid_order(body)
        if order is None:  # the route answers it: its 400 or 422, as for any route
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            answer = await scope["app"].state.order_queue.place(order)
        except (APIError, ChainUnavailable) as exc:
            content, status = error_answer(exc)
            note_error(scope, content["error"])
            response = JSONResponse(content, status_code=status, headers=retry_headers(exc))
        else:
            accepted = OrderAccepted.model_validate(answer).model_dump(mode="json")
            response = JSONResponse(accepted, status_code=202)
        await response(scope, receive, send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


async def _read_body(receive: Receive) -> bytes:
    """The whole body (BodyLimit, outside, stops one that passes the limit)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _valid_order(body: bytes) -> OrderCreate | None:
    """The order, parsed and validated as the route would (json, then the model in Python
    mode); None when it is not one."""
    try:
        value: Any = json.loads(body)
        return OrderCreate.model_validate(value)
    except (ValueError, ValidationError):  # a JSONDecodeError is a ValueError
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the app: the body already read, then the client's own messages."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


__all__ = ["INTAKE_THREADS", "MAX_GROUP", "DirectOrderEntry", "OrderQueue"]
