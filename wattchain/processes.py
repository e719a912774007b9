"""Starting the parts as child processes (`wattchain run`, `wattchain demo`, the tests): the API
and the workers, each its own process so one can die (kill -9) without the other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .node import REPO_ROOT


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Child:
    """A `python -m wattchain.cli <command> ...` child with its output in a log file."""

    def __init__(self, args: list[str], log_path: Path):
        self.args = args
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wattchain.cli", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=str(REPO_ROOT),
            start_new_session=True,
        )
        log.close()
        return self

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
    data_dir: Path, node_url: str, port: int, log_path: Path, *, extra: list[str] | None = None
) -> Child:
    return Child(
        ["api", "--data", str(data_dir), "--node", node_url, "--port", str(port), *(extra or [])],
        log_path,
    ).start()


def start_workers(
    data_dir: Path, node_url: str, log_path: Path, *, extra: list[str] | None = None
) -> Child:
    return Child(
        ["workers", "--data", str(data_dir), "--node", node_url, *(extra or [])], log_path
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


__all__ = ["Child", "start_api", "start_workers", "wait_http"]
