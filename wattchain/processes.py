"""Starting the parts as child processes (`wattchain run`, `wattchain demo`, the tests): the API,
the workers and meter ingest, each its own process so one can die (kill -9) without the other.
Each child leads its own process group and dies with the process that started it
(`lifecycle.die_with_parent`), so none outlives a killed parent. `start_market` starts a whole
market on a data folder under one supervisor (`wattchain run`, `wattchain bench api`).
`serve_api` is `wattchain api` itself: the API in one process or in several."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from market.settings import Settings

from .lifecycle import DataLock, die_with_parent, port_free
from .node import REPO_ROOT, DevNode, free_port
from .supervisor import Supervisor

if TYPE_CHECKING:
    from fastapi import FastAPI

# Where serve_api hands its settings to the API's worker processes.
API_WORKER_SETTINGS = "WATTCHAIN_API_WORKER_SETTINGS"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Child:
    """A `python -m wattchain.cli <command> ...` child (or any `program`) with its output in a
    log file. `keep_fds` are passed on to it (the data folder's lock: held until it exits)."""

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        *,
        program: list[str] | None = None,
        keep_fds: tuple[int, ...] = (),
    ):
        self.args = args
        self.log_path = Path(log_path)
        self.program = program if program is not None else [sys.executable, "-m", "wattchain.cli"]
        self.keep_fds = keep_fds
        self.process: subprocess.Popen | None = None

    def launch(self) -> Child:
        """Start it (again, after it died); does not wait for it to be ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.program, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
                cwd=str(REPO_ROOT),
                start_new_session=True,
                preexec_fn=die_with_parent(),
                pass_fds=self.keep_fds,
            )
        return self

    def start(self) -> Child:
        return self.launch()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def kill9(self) -> None:
        """SIGKILL, no cleanup: what a crash looks like."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def start_api(
    data_dir: Path,
    node_url: str,
    port: int,
    log_path: Path,
    *,
    extra: list[str] | None = None,
    keep_fds: tuple[int, ...] = (),
) -> Child:
    return Child(
        ["api", "--data", str(data_dir), "--node", node_url, "--port", str(port), *(extra or [])],
        log_path,
        keep_fds=keep_fds,
    ).start()


def serve_api(settings: Settings, *, log_level: str = "warning") -> None:
    """`wattchain api`: the API until interrupted, in this process, or with `api_processes` > 1
    in that many worker processes sharing the port (uvicorn binds it, starts them and restarts
    one that dies). One process runs out of a core first (docs/api.md, "Processes")."""
    from api.app import serve, uvicorn_options

    if settings.api_processes == 1:
        serve(settings, log_level=log_level)
        return
    import uvicorn

    # The workers start afresh (spawned): they read the settings as this process resolved them
    # (file, environment, command line) from the environment, and count their metrics in files
    # that /metrics adds up (prometheus-client's multiprocess mode, set before they import it).
    metrics_dir = Path(settings.data_dir) / "api-metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ[API_WORKER_SETTINGS] = settings.model_dump_json()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run(
        f"{__name__}:api_worker",
        factory=True,
        workers=settings.api_processes,
        **uvicorn_options(settings, log_level),
    )


def api_worker() -> FastAPI:
    """The app of one of serve_api's worker processes. It dies with the process that started
    it (uvicorn's, killed -9 say), which multiprocessing does not arrange: no worker may go on
    holding the port and the data folder after the API is gone."""
    preexec = die_with_parent(parent=os.getppid())
    if preexec is not None:
        preexec()
    from api.app import create_app
    from api.metrics import forget_dead_processes

    forget_dead_processes(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))

    return create_app(Settings.model_validate_json(os.environ[API_WORKER_SETTINGS]))


def start_workers(
    data_dir: Path,
    node_url: str,
    log_path: Path,
    *,
    extra: list[str] | None = None,
    keep_fds: tuple[int, ...] = (),
) -> Child:
    return Child(
        ["workers", "--data", str(data_dir), "--node", node_url, *(extra or [])],
        log_path,
        keep_fds=keep_fds,
    ).start()


def start_ingest(
    data_dir: Path,
    node_url: str,
    sites: Path,
    log_path: Path,
    *,
    extra: list[str] | None = None,
    keep_fds: tuple[int, ...] = (),
) -> Child:
    return Child(
        ["ingest", "--data", str(data_dir), "--node", node_url, "--sites", str(sites)]
        + (extra or []),
        log_path,
        keep_fds=keep_fds,
    ).start()


def wait_http(url: str, timeout_s: float = 60.0, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"process exited early; see {child.log_path}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@dataclass
class Market:
    """A market's parts on one data folder, under one supervisor: the node (None when the
    market uses a node of someone else's), the workers, the API and maybe meter ingest.
    `parts` by name: "node", "workers", "api", "ingest"."""

    supervisor: Supervisor
    node_url: str
    api_url: str
    parts: dict[str, Child | DevNode]
    locks: list[DataLock] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every part (the node last) and let go of the data folder."""
        self.supervisor.stop()
        for lock in self.locks:
            lock.release()


def start_market(
    data: Path,
    *,
    holder: str,
    node_binary: str | os.PathLike | None = None,
    node_url: str | None = None,
    rpc_port: int | None = None,
    api_port: int | None = None,
    api_host: str = "127.0.0.1",
    sites: Path | None = None,
    extra: list[str] | None = None,
    restart_limit: int = 10,
    api_processes: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Market:
    """Start a market on `data` and return once its API answers: the node (unless `node_url`
    names one; its chain in DATA/chain, kept across restarts), the workers, the API and, with
    `sites`, meter ingest, each a supervised child with its log in DATA/logs. The folder is
    locked for `holder` (a second market on it is refused). `extra` is passed to every Python
    part (`--config`, `-v`); `api_processes` (None: the settings') to the API. Nothing is left
    running if it fails."""
    data = Path(data).resolve()
    logs = data / "logs"
    market = Market(Supervisor(restart_limit=restart_limit), "", "", {})
    try:
        # The market's stores, and the chain's folder when the node is ours: a second market
        # (or a `wattchain node`) on this folder is refused while this one or a child of it lives.
        market.locks.append(DataLock.acquire(data, "market", holder))
        if node_url is None:
            market.locks.append(DataLock.acquire(data, "chain", holder))
        keep = tuple(lock.fd for lock in market.locks if lock.fd is not None)
        api_port = api_port or free_port()
        if not port_free(api_port, api_host):
            raise RuntimeError(
                f"API port {api_port} is in use; stop what listens there or choose another "
                "port (--api-port)"
            )
        host = api_host if api_host not in ("0.0.0.0", "::") else "127.0.0.1"
        market.api_url = f"http://{host}:{api_port}"
        if node_url is None:
            node = DevNode(
                node_binary,
                base_path=data / "chain",
                rpc_port=rpc_port or None,
                log_path=logs / "node.log",
                keep_fds=keep,
            )
            market.supervisor.add("node", node)
            market.parts["node"] = node
            say(f"starting the node (chain in {data / 'chain'})")
            node.start()
            node_url = node.url
        market.node_url = node_url
        processes = ["--processes", str(api_processes)] if api_processes else []
        parts = {
            "workers": start_workers(
                data, node_url, logs / "workers.log", extra=extra, keep_fds=keep
            ),
            "api": start_api(
                data,
                node_url,
                api_port,
                logs / "api.log",
                extra=[*(extra or []), *processes],
                keep_fds=keep,
            ),
        }
        if sites is not None:
            parts["ingest"] = start_ingest(
                data,
                node_url,
                Path(sites).resolve(),
                logs / "ingest.log",
                extra=extra,
                keep_fds=keep,
            )
        for name, part in parts.items():
            market.supervisor.add(name, part)
            market.parts[name] = part
        wait_http(f"{market.api_url}/health", 90, parts["api"])
        return market
    except BaseException:
        market.stop()
        raise


__all__ = [
    "Child",
    "Market",
    "start_api",
    "start_ingest",
    "start_market",
    "start_workers",
    "wait_http",
]
