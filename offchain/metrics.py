"""Prometheus metrics of the workers (relayer and scheduler), in the market's words, and the
HTTP server that serves them from the `wattchain workers` process (`metrics_port`; the API
serves its own at `/metrics`).

Relay lag in blocks counts from the best block when an entry was logged (its 202) to the block
that includes it. The relayer learns the best block each time it sends a batch; an entry's
starting block is the first one it saw at or after the entry was logged (for an entry logged
while the relayer was down: when it sent its first batch after starting, so such a lag is
counted short; `wattchain_relay_lag_seconds` has it whole)."""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

KIND = {"orders": "order", "cancels": "cancel"}  # the log's tables, as metric labels

# -- relayer ---------------------------------------------------------------------------------
RELAYED = Counter(
    "wattchain_relayed_total", "Entries (orders, cancels) the relayer got on chain", ["kind"]
)
RELAY_REJECTED = Counter(
    "wattchain_relay_rejected_total",
    "Entries refused for good, by reason: the chain's verdict (the pallet's error), the pool's, "
    "or GateClosed for one that reached the relayer after its gate",
    ["kind", "reason"],
)
RELAY_BATCHES = Counter(
    "wattchain_relay_batches_total",
    "Extrinsics the relayer sent, by what became of them: landed, failed (the batch was split), "
    "refused (by the node's pool), dropped (never included)",
    ["outcome"],
)
RELAY_LAG_BLOCKS = Histogram(
    "wattchain_relay_lag_blocks",
    "Blocks from the best block when an entry was logged (202) to the block that includes it",
    ["kind"],
    buckets=(1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60),
)
RELAY_LAG_SECONDS = Histogram(
    "wattchain_relay_lag_seconds",
    "Time from an entry's 202 (logged) to the relayer seeing it in a block",
    ["kind"],
    buckets=(0.5, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60, 120, 300),
)
RELAY_BACKLOG = Gauge(
    "wattchain_relay_backlog",
    "Entries waiting to be sent (state=pending) or sent and not yet in a block (in_flight)",
    ["kind", "state"],
)
RELAY_OLDEST_PENDING = Gauge(
    "wattchain_relay_oldest_pending_age_seconds",
    "Age of the oldest entry waiting to be sent (0: none waits)",
    ["kind"],
)

# -- scheduler -------------------------------------------------------------------------------
CLEARING_ATTEMPTS = Counter(
    "wattchain_clearing_attempts_total",
    "Clearing attempts that reached each state (signing, submitted, committed, rejected, "
    "dropped, abandoned, voiding, voided, skipped)",
    ["state"],
)
LAST_CLEARED_INTERVAL = Gauge(
    "wattchain_last_cleared_interval", "The latest interval whose clearing is committed"
)
NEXT_INTERVAL = Gauge(
    "wattchain_clearing_next_interval", "The interval the scheduler clears (or voids) next"
)
INTERVALS_VOIDED = Counter(
    "wattchain_intervals_voided_total", "Intervals voided: no valid clearing by their end"
)
CLEARING_COMMIT_LATENCY = Histogram(
    "wattchain_clearing_commit_latency_seconds",
    "From an interval's gate closure to its clearing's block (finalized, with finality on)",
    buckets=(2, 4, 6, 8, 10, 12, 15, 20, 30, 45, 60, 120, 300),
)

_cleared_lock = threading.Lock()
_last_cleared: int | None = None


def cleared(interval: int | None) -> None:
    """An interval's clearing is committed: the last cleared interval never goes back."""
    global _last_cleared
    if interval is None:
        return
    with _cleared_lock:
        if _last_cleared is None or interval > _last_cleared:
            _last_cleared = interval
            LAST_CLEARED_INTERVAL.set(interval)


def serve(port: int, host: str = "127.0.0.1") -> WSGIServer:
    """Serve this process's metrics at http://host:port/metrics on a daemon thread. Raises
    OSError naming the port when it cannot listen there."""
    try:
        server, _ = start_http_server(port, addr=host)
    except OSError as exc:
        raise OSError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); free the port or "
            "choose another (metrics_port)"
        ) from exc
    log.info("metrics at http://%s:%d/metrics", host, port)
    return server


__all__ = [
    "CLEARING_ATTEMPTS",
    "CLEARING_COMMIT_LATENCY",
    "INTERVALS_VOIDED",
    "KIND",
    "LAST_CLEARED_INTERVAL",
    "NEXT_INTERVAL",
    "RELAYED",
    "RELAY_BACKLOG",
    "RELAY_BATCHES",
    "RELAY_LAG_BLOCKS",
    "RELAY_LAG_SECONDS",
    "RELAY_OLDEST_PENDING",
    "RELAY_REJECTED",
    "cleared",
    "serve",
]
