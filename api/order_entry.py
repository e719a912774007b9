"""POST /orders answered directly: the one request of the API that comes a thousand times a
second (issue 11), without the framework's machinery per request.

Profiled under load (py-spy, samples holding the GIL), the intake's own checks were 10 % of
the API's time; FastAPI and Starlette's routing, dependency injection, thread hand-off and
answer validation took about half. `DirectOrderEntry` sits inside the API's own middleware
(body limit, rate limit, outcome counting: all still apply) and answers a well-formed order
itself, with the same checks (`intake.place_order`), the same answers and the same counts.

What it does not take it passes on, untouched, to the route in api/routes/orders.py, which
stays the operation's definition in the schema: a body that is not JSON, or not a valid
`OrderCreate`, so that every 400 and 422 is the framework's own, word for word.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
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

PATH = "/orders"

# Threads that run the intake: its checks read SQLite and its 202 waits for the log's group
# commit (an fsync), so each request in flight holds one. As many as the framework's pool
# (anyio's default), which served the route before.
INTAKE_THREADS = 40


def intake_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(INTAKE_THREADS, thread_name_prefix="intake")


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
        state: State = scope["app"].state
        try:
            answer = await asyncio.get_running_loop().run_in_executor(
                state.intake_pool,
                intake.place_order,
                order,
                state.chain,
                order_log_of(state),
                state.guards,
                index_of(state),
                state.settings,
            )
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


__all__ = ["DirectOrderEntry", "INTAKE_THREADS", "intake_pool"]
