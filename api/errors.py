"""One error shape for every 4xx: {"error": <reason>, "detail": <text>}. Reasons are the
pallet's error names where the API checks what the chain would (NotRegistered, GateClosed,
PriceOutOfBounds, ...), so a client handles a refusal the same way wherever it comes from."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from chain import ChainUnavailable


class APIError(Exception):
    def __init__(self, status: int, error: str, detail: str):
        self.status = status
        self.error = error
        self.detail = detail
        super().__init__(f"{status} {error}: {detail}")


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError):
        return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(ChainUnavailable)
    async def _no_chain(_: Request, exc: ChainUnavailable):
        return JSONResponse({"error": "ChainUnavailable", "detail": str(exc)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        errors = [
            {
                "field": _field(e.get("loc", ())),
                "message": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return JSONResponse(
            {"error": "InvalidRequest", "detail": detail, "errors": errors}, status_code=422
        )


__all__ = ["APIError", "install"]
