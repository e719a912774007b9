"""The WattChain API: FastAPI app factory. One router per resource under api/routes/; the
order log, the index and the operator's store live in the data folder the workers share."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from market.settings import Settings
from store import DataDir
from store.orderlog import log_commits

from . import errors
from .auth import session_key
from .backpressure import RelayQueue
from .chainview import ChainView
from .intake import Guards
from .limits import BATCH_PATH, BodyLimit, batch_body_bytes
from .metrics import NODE_REACHABLE, OrderOutcomes
from .order_entry import DirectOrderEntry, OrderQueue
from .ratelimit import ClientRateLimit, RateLimits
from .routes import (
    devices,
    intervals,
    market,
    meters,
    metrics,
    orders,
    participants,
    reports,
    session,
    stream,
)

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
# How long the API's start waits for a first connection to the node. A node that answers takes
# about a second; without one the API starts anyway (503 until it connects in the background).
NODE_WAIT_S = 15.0


def create_app(settings: Settings | None = None, *, chain: ChainView | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        app.state.data = DataDir(settings.data_dir)
        session_key(app.state.data.root)  # a bad key file stops the start, not each login
        # Create the stores' schemas before the first request reads them.
        app.state.data.orders(), app.state.data.index(), app.state.data.ops()
        app.state.chain = chain or ChainView(settings.node_url).start(wait_s=NODE_WAIT_S)
        # Then the chain view sets it as the node comes and goes (a stand-in view keeps this).
        NODE_REACHABLE.set(float(getattr(app.state.chain, "node_reachable", True)))
        app.state.order_queue = OrderQueue(app.state).start()
        app.state.checkpoints = app.state.data.orders_checkpoints()
        log.info("API on data folder %s, node %s", settings.data_dir, settings.node_url)
        yield
        app.state.order_queue.close()
        app.state.checkpoints.stop()
        app.state.chain.close()

    app = FastAPI(
        title="WattChain API",
        version="0.1.0",
        lifespan=lifespan,
        # The schema is at /openapi.json. No docs pages: theirs load scripts from a CDN, which
        # the machines cannot reach and the app's origin must not run.
        docs_url=None,
        redoc_url=None,
        # The API's metrics are Prometheus', at /metrics. FastAPI's own OpenTelemetry looked
        # for a tracer and a meter on every request (3 % of the API's time under load) to
        # send nowhere, as no provider is set.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        description="Peer-to-peer electricity market: signed orders in, clearings, settlements and "
        "meter readings out. Energy in Wh, prices in ticks per kWh, money in units of "
        "1/1000 tick (1 BRL = 100 ticks = 100000 units).",
    )
    errors.install(app)
    rates = RateLimits(settings.client_rate_limit, settings.participant_rate_limit)
    app.state.guards = Guards(RelayQueue(settings), rates)
    app.state.log_commits = log_commits()
    app.add_middleware(DirectOrderEntry)  # innermost: inside the limits and the counting
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        paths={BATCH_PATH: batch_body_bytes(settings)},
    )
    app.add_middleware(ClientRateLimit, limits=rates)  # before any body is read
    app.add_middleware(OrderOutcomes)  # outermost: counts the 413s and 429s too
    for module in (
        market,
        session,
        orders,
        intervals,
        participants,
        meters,
        devices,
        reports,
        stream,
        metrics,
    ):
        app.include_router(module.router, responses=errors.ERROR_RESPONSES)
    # Every page the API serves runs only the app's own bundle (and WebAssembly for its
    # crypto), talks only to this API and the node, and cannot be framed: an injected script
    # or frame gets nowhere near an unlocked key (docs/web.md, "Threat model"). Set where the
    # pages are answered, so the order path pays nothing for it.
    rpc = settings.public_rpc_url or settings.node_url
    page_headers = {
        "content-security-policy": (
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval';"
            " style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob:; connect-src 'self' {rpc}; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
    }
    app.mount("/static", AppFiles(page_headers, directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=page_headers)

    return app


class AppFiles(StaticFiles):
    """The app's files; its HTML pages carry `page_headers` (the Content-Security-Policy)."""

    def __init__(self, page_headers: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self.page_headers = page_headers

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.update(self.page_headers)
        return response


def uvicorn_options(settings: Settings, log_level: str) -> dict:
    """How uvicorn serves the API, in one process (`serve`) or several
    (`wattchain.processes.serve_api`)."""
    return dict(
        host=settings.api_host,
        port=settings.api_port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=3,
        # Named, not left to "auto", so that a missing one fails the start instead of falling
        # back to the pure-Python parser and loop unnoticed.
        http="httptools",
        loop="uvloop",
    )


def serve(settings: Settings, *, log_level: str = "warning") -> None:
    """Run the API with uvicorn in this process until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), **uvicorn_options(settings, log_level))


__all__ = ["create_app", "serve", "uvicorn_options"]
