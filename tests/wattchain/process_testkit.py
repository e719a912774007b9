"""Helpers for the tests of the programs' processes: who is a child of whom, whether a process
still runs, and small Python programs to supervise instead of a real node."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from wattchain.node import REPO_ROOT

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def wattchain(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """`python -m wattchain.cli ARGS` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "wattchain.cli", *args],
        cwd=REPO_ROOT,
        env=dict(os.environ, **(env or {})),
        **kwargs,
    )


def python(code: str, **kwargs) -> subprocess.Popen:
    """A Python program in the background, its stdout piped (it prints PIDs for the test)."""
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, **kwargs
    )


def fake_node(folder: Path) -> Path:
    """A stand-in for wattchain-node: takes its arguments and sleeps (never answers RPC)."""
    path = folder / "fake-wattchain-node"
    path.write_text("#!/bin/sh\nexec sleep 60\n")
    path.chmod(0o755)
    return path


def kill9_and_reap(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(5)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
