"""Starting the parts as child processes (`wattchain run`, `wattchain demo`, the tests): the API,
the workers and meter ingest, each its own process so one can die (kill -9) without the other.
Each child leads its own process group and dies with the process that started it
(`lifecycle.die_with_parent`), so none outlives a killed parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .lifecycle import die_with_parent
from .node import REPO_ROOT


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


__all__ = ["Child", "start_api", "start_ingest", "start_workers", "wait_http"]
