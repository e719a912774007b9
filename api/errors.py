"""One error shape for every error response: {"error": <reason>, "detail": <text>} (and, when
fields are at fault, "errors": [{"field", "message", "type"}]). Reasons are the pallet's error
names where the API checks what the chain would (NotRegistered, GateClosed,
PriceOutOfBounds, ...), so a client handles a refusal the same way wherever it comes from.

The handlers below give FastAPI's and Starlette's own errors (request validation, unknown path,
method not allowed, a body that does not parse, a body too large) and any unhandled exception
the same shape, and `ERROR_RESPONSES` documents it for every operation in the OpenAPI schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Send

from chain import ChainUnavailable

from .metrics import note_error
from .models import ErrorPublic

# The reason of each HTTP error that Starlette or FastAPI raise themselves.
HTTP_REASONS = {
    400: "InvalidRequest",  # a body that is not what its content type says
    404: "NotFound",  # no such path
    405: "MethodNotAllowed",
    413: "BodyTooLarge",
}

# Every operation documents its error answers with the one model, as the OpenAPI ranges "4XX"
# and "5XX" (which also keeps FastAPI from documenting its own HTTPValidationError for 422).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": ErrorPublic,
        "description": "Refused: `error` names the reason (422 InvalidRequest: `errors` lists "
        "the fields at fault)",
    },
    "5XX": {"model": ErrorPublic, "description": "ChainUnavailable (503) or InternalError"},
}

# Retry-After (seconds) of a 503: the API reconnects to the node in the background, and answers
# such a request again at once.
RETRY_AFTER_S = 2


class APIError(Exception):
    """An error answer. A 503 (and any answer given `retry_after_s`) carries Retry-After."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        field: str | None = None,
        retry_after_s: int | None = None,
    ):
        self.status = status
        self.error = error
        self.detail = detail
        self.field = field
        if retry_after_s is None and status == 503:
            retry_after_s = RETRY_AFTER_S
        self.retry_after_s = retry_after_s
        super().__init__(f"{status} {error}: {detail}")


def error_body(error: str, detail: str, errors: list[dict[str, str]] | None = None) -> dict:
    body: dict[str, Any] = {"error": error, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


async def send_error(
    send: Send, status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> None:
    """Answer from an ASGI middleware (before any route runs), in the same shape."""
    body = json.dumps(error_body(error, detail)).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def error_answer(exc: APIError | ChainUnavailable) -> tuple[dict, int]:
    """(body, status) of the answer to a refusal: what the handlers below send, and what a batch
    (POST /orders/batch) gives for each order it refuses."""
    if isinstance(exc, ChainUnavailable):
        return error_body("ChainUnavailable", str(exc)), 503
    errors = None
    if exc.field is not None:
        errors = [{"field": exc.field, "message": exc.detail, "type": exc.error}]
    return error_body(exc.error, exc.detail, errors), exc.status


def invalid_request_body(validation_errors: Sequence[Any]) -> dict:
    """The 422 InvalidRequest body for pydantic's (or FastAPI's) validation errors, each field
    named without its location prefix ("body", "query", ...)."""
    errors = [
        {
            "field": _field(e.get("loc", ()), e.get("type", "")),
            "message": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in validation_errors
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return error_body("InvalidRequest", detail, errors)


def _field(loc, kind: str) -> str:
    if kind == "json_invalid":  # loc is ("body", <position of the syntax error>)
        return "body"
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def retry_headers(exc: APIError | ChainUnavailable) -> dict[str, str] | None:
    """Retry-After of a refusal that a later try may pass: every 503 (ChainUnavailable: the node
    cannot answer and the API has no value read before; it reconnects in the background)."""
    seconds = RETRY_AFTER_S if isinstance(exc, ChainUnavailable) else exc.retry_after_s
    return None if seconds is None else {"Retry-After": str(seconds)}


def _refusal(request: Request, exc: APIError | ChainUnavailable) -> JSONResponse:
    body, status = error_answer(exc)
    note_error(request.scope, body["error"])
    return JSONResponse(body, status_code=status, headers=retry_headers(exc))


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the request's path takes (a path may have several routes,
    nested in included routers): those with which the app's routing would match it fully."""
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.routes):
            allowed.append(method)
    return allowed


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return _refusal(request, exc)

    @app.exception_handler(ChainUnavailable)
    async def _no_chain(request: Request, exc: ChainUnavailable):
        return _refusal(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        note_error(request.scope, "InvalidRequest")
        return JSONResponse(invalid_request_body(exc.errors()), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        reason = HTTP_REASONS.get(exc.status_code, "HTTPError")
        note_error(request.scope, reason)
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else reason
        headers = exc.headers
        if exc.status_code == 405:  # Starlette's names only the first route of the path
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return JSONResponse(
            error_body(reason, detail), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception):
        # Starlette re-raises it after this answer, so the server logs it with its traceback.
        return JSONResponse(
            error_body("InternalError", "the API failed on this request"), status_code=500
        )


__all__ = [
    "ERROR_RESPONSES",
    "HTTP_REASONS",
    "RETRY_AFTER_S",
    "APIError",
    "error_answer",
    "error_body",
    "install",
    "invalid_request_body",
    "retry_headers",
]
