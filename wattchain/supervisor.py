"""`wattchain run`'s supervisor: it watches its children (node, API, workers, ingest), restarts
one that dies after a backoff (1 s, doubling up to 30 s; back to 1 s once the child has stayed
up a minute), logs each death with the child's exit status and the last line of its log, and
gives up (stops everything, exit 1) when one child keeps dying."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger("wattchain.run")


class Part(Protocol):
    """A child process the supervisor can (re)start: a processes.Child or a node.DevNode."""

    log_path: Path | None
    process: subprocess.Popen | None

    def launch(self) -> object: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Backoff:
    first_s: float = 1.0
    max_s: float = 30.0
    # A child that stayed up this long was healthy: its next restart waits first_s again.
    reset_after_s: float = 60.0

    def delay_s(self, failures: int) -> float:
        """The wait before restarting a child that died `failures` times in a row (>= 1)."""
        return min(self.first_s * 2 ** (failures - 1), self.max_s)


class GaveUp(RuntimeError):
    """A child died `restart_limit` times in a row, each soon after starting."""


def exit_status(returncode: int) -> str:
    """'exit status 3' or 'killed by signal 9 (SIGKILL)'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-returncode} ({name})"
    return f"exit status {returncode}"


def log_tail(path: Path | None, lines: int = 1, max_bytes: int = 8192) -> list[str]:
    """The last non-empty lines of a child's log file (nothing if there is none)."""
    if path is None:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


@dataclass
class _Watched:
    name: str
    part: Part
    started_at: float
    failures: int = 0  # deaths in a row, each before the child had stayed up reset_after_s
    restarts: int = 0
    restart_at: float | None = None


class Supervisor:
    """Add children once they are started; then run() (or check() in a loop of one's own).

    `restart_limit`: deaths in a row of one child (each within backoff.reset_after_s of its
    start) after which it gives up and raises GaveUp; 0 restarts forever."""

    def __init__(
        self,
        *,
        backoff: Backoff | None = None,
        restart_limit: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.backoff = backoff or Backoff()
        self.restart_limit = restart_limit
        self.clock = clock
        self.watched: list[_Watched] = []
        self.stopped = False

    def add(self, name: str, part: Part) -> None:
        self.watched.append(_Watched(name, part, self.clock()))

    def restarts(self, name: str) -> int:
        return next(w.restarts for w in self.watched if w.name == name)

    def run(self, poll_s: float = 0.5) -> None:
        """Watch until interrupted (KeyboardInterrupt) or until a child keeps dying (GaveUp)."""
        while True:
            self.check()
            time.sleep(poll_s)

    def check(self) -> None:
        """One pass: note the children that died, restart those whose backoff is over."""
        if self.stopped:
            return
        for w in self.watched:
            now = self.clock()
            if w.restart_at is not None:
                if now >= w.restart_at:
                    self._restart(w, now)
                continue
            process = w.part.process
            if process is None:
                self._died(w, now, None, "not running")
            elif _exited(process):
                self._died(w, now, process.pid, exit_status(process.returncode))

    def stop(self) -> None:
        """Stop every child, the last added first (the node, added first, stops last); none is
        restarted after this."""
        self.stopped = True
        for w in reversed(self.watched):
            try:
                w.part.stop()
            except Exception:  # keep stopping the others
                log.exception("stopping %s failed", w.name)

    # -- internals ---------------------------------------------------------------------------
    def _restart(self, w: _Watched, now: float) -> None:
        w.restart_at = None
        w.started_at = now
        try:
            w.part.launch()
        except Exception as exc:  # e.g. its port is taken: a death like any other
            self._died(w, now, None, f"failed to start ({exc})")
            return
        w.restarts += 1
        pid = w.part.process.pid if w.part.process is not None else "?"
        log.warning("%s restarted (pid %s, restart %d)", w.name, pid, w.restarts)

    def _died(self, w: _Watched, now: float, pid: int | None, status: str) -> None:
        uptime_s = now - w.started_at
        if uptime_s >= self.backoff.reset_after_s:
            w.failures = 0
        w.failures += 1
        where = f"; its log: {w.part.log_path}" if w.part.log_path else ""
        last = log_tail(w.part.log_path)
        last_line = f"; last log line: {last[-1].strip()[:300]}" if last else ""
        who = f"{w.name} (pid {pid})" if pid is not None else w.name
        if self.restart_limit and w.failures >= self.restart_limit:
            tail = "\n".join("    " + line for line in log_tail(w.part.log_path, 15))
            raise GaveUp(
                f"{w.name} keeps dying: {w.failures} times in a row, each within "
                f"{self.backoff.reset_after_s:.0f} s of starting (last: {status}); giving up"
                f"{where}" + (f"\n  its log ends with:\n{tail}" if tail else "")
            )
        delay_s = self.backoff.delay_s(w.failures)
        w.restart_at = now + delay_s
        if w.failures >= 3:
            log.error(
                "%s keeps dying: %s after %.1f s, %d times in a row; restarting in %.3g s%s%s",
                who,
                status,
                uptime_s,
                w.failures,
                delay_s,
                where,
                last_line,
            )
        else:
            log.warning(
                "%s died: %s after %.1f s; restarting in %.3g s%s",
                who,
                status,
                uptime_s,
                delay_s,
                last_line,
            )


def _exited(process: subprocess.Popen) -> bool:
    """Whether the child has exited (then reaped). What it left running in its process group
    is killed first, while the unreaped child still holds its PID (the group's id)."""
    if process.returncode is not None:
        return True
    try:
        if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return False
    except ChildProcessError:  # reaped elsewhere
        pass
    _kill_group(process.pid)
    process.poll()
    return process.returncode is not None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


__all__ = ["Backoff", "GaveUp", "Part", "Supervisor", "exit_status", "log_tail"]
