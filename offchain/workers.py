"""Runs the off-chain workers (relayer, scheduler, settler, indexer), each on its own thread
with its own node connection, until told to stop. A worker's error is logged and the worker
carries on after a pause: a node restart or a busy database must not end the market."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from chain import Chain, ChainUnavailable, settle_heap
from market import keypair
from market.settings import Settings
from store import DataDir
from store.db import Checkpoints

from . import metrics
from .indexer import Indexer
from .relayer import Relayer
from .scheduler import Scheduler
from .settlement import Settler

log = logging.getLogger(__name__)

WORKERS = ("relayer", "scheduler", "settler", "indexer")
_POLL_S = {"relayer": 0.1, "scheduler": 0.5, "settler": 1.0, "indexer": 0.5}


def build_worker(name: str, settings: Settings, data: DataDir, chain: Chain, **kwargs):
    if name == "relayer":
        return Relayer(
            data,
            chain,
            keypair(settings.relayer_uri),
            batch=settings.relay_batch,
            in_flight=settings.relay_in_flight,
        )
    if name == "scheduler":
        return Scheduler(
            data,
            chain,
            keypair(settings.submitter_uri),
            finality=settings.finality,
            page_matches=settings.clearing_page_matches or None,
            **kwargs,
        )
    if name == "settler":
        return Settler(
            data,
            chain,
            keypair(settings.submitter_uri),
            finality=settings.finality,
            page=settings.settle_page,
            min_delay_ms=settings.settle_min_delay_ms,
        )
    if name == "indexer":
        return Indexer(data, chain)
    raise ValueError(f"unknown worker {name!r}; expected one of {', '.join(WORKERS)}")


def _loop(
    name: str, settings: Settings, stop: threading.Event, ready: Callable[[str], None], **kwargs
) -> None:
    data = DataDir(settings.data_dir)
    chain = Chain(settings.node_url)
    worker = None
    while not stop.is_set():
        try:
            if worker is None:
                chain.connect(timeout_s=30)
                worker = build_worker(name, settings, data, chain, **kwargs)
                settle_heap()  # the connection's metadata, out of the collector's full passes
                ready(name)
            worked = worker.step()
            if not worked:
                stop.wait(_POLL_S[name])
        except ChainUnavailable as exc:
            log.warning("%s: node unavailable (%s); retrying", name, exc)
            stop.wait(2.0)
        except Exception:  # keep the market running; the traceback goes to the log
            log.exception("%s: step failed; retrying in 2 s", name)
            stop.wait(2.0)
    chain.close()
    data.close()


class Workers:
    """The worker threads of one process."""

    def __init__(self, settings: Settings, names: tuple[str, ...] = WORKERS, **scheduler_kwargs):
        self.settings = settings
        self.names = names
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self._ready: set[str] = set()
        self._lock = threading.Lock()
        self.scheduler_kwargs = scheduler_kwargs
        self.metrics_server = None
        self.checkpoints: Checkpoints | None = None

    def _mark_ready(self, name: str) -> None:
        with self._lock:
            self._ready.add(name)
        log.info("%s running", name)

    def start(self) -> Workers:
        if self.settings.metrics_port is not None and self.metrics_server is None:
            self.metrics_server = metrics.serve(self.settings.metrics_port, self.settings.api_host)
        # Build the stores once up front so their schemas exist before any reader opens them.
        data = DataDir(self.settings.data_dir)
        data.ops(), data.orders(), data.index()
        if "relayer" in self.names and self.checkpoints is None:  # it writes the order log
            self.checkpoints = data.orders_checkpoints()
        for name in self.names:
            kwargs = self.scheduler_kwargs if name == "scheduler" else {}
            t = threading.Thread(
                target=_loop,
                args=(name, self.settings, self.stop_event, self._mark_ready),
                kwargs=kwargs,
                name=f"wattchain-{name}",
                daemon=True,
            )
            t.start()
            self.threads.append(t)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._ready >= set(self.names):
                    return
            time.sleep(0.1)
        raise TimeoutError(f"workers not ready: {set(self.names) - self._ready}")

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout_s)
        if self.checkpoints is not None:
            self.checkpoints.stop()
            self.checkpoints = None
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None

    def run_forever(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.stop_event.wait(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()


__all__ = ["WORKERS", "Workers", "build_worker"]
