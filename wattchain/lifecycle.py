"""What keeps the programs' processes in order: children that die with their parent (even a
kill -9 of it), one program per data folder (an exclusive lock held for the life of the
process and of the children it passes the lock to), and ports checked before they are used."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(
    sig: int = signal.SIGKILL, *, parent: int | None = None
) -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen: the child gets `sig` when its parent dies, however
    it dies (kill -9 included). None where there is no prctl (not Linux). A process that
    another program started calls it itself, with `parent` its parent's PID (os.getppid()).

    The kernel sends the signal when the *thread* that started the child ends, so start
    children from a thread that lives as long as they should (the main thread does)."""
    if not sys.platform.startswith("linux"):
        return None
    # Loaded here, before the fork: the child only calls a function it already has.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid() if parent is None else parent

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on host:port now (a port in TIME_WAIT counts as free)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class DataFolderBusy(RuntimeError):
    """Another process holds this data folder's lock."""


class DataLock:
    """An exclusive `flock` on `<folder>/<name>.lock`, held until release() or until this
    process and every child it passed `fd` to (pass_fds) have exited: the kernel releases it
    then, so a kill -9 never leaves a stale lock, and a child still shutting down (a node
    closing its database) keeps the folder taken until it is gone.

    The file holds the PID and command of the holder, for the error a second start gets. It is
    never deleted (deleting a lock file lets two processes lock two different files)."""

    def __init__(self, folder: Path, name: str, fd: int):
        self.folder = folder
        self.name = name
        self.fd: int | None = fd

    @property
    def path(self) -> Path:
        return lock_path(self.folder, self.name)

    @classmethod
    def acquire(cls, folder: str | os.PathLike[str], name: str, holder: str) -> DataLock:
        """Take `<folder>/<name>.lock` or raise DataFolderBusy naming the folder and the holder.
        `holder` says who takes it (e.g. "wattchain run"), for that error."""
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        path = lock_path(folder, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise DataFolderBusy(_busy_message(folder, path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {holder}\n".encode(), 0)
        return cls(folder, name, fd)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # the lock goes once no child holds the descriptor either
            self.fd = None

    def __enter__(self) -> DataLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.lock"


def _busy_message(folder: Path, path: Path) -> str:
    try:
        recorded = path.read_text().strip()
    except OSError:
        recorded = ""
    pid_text, _, command = recorded.partition(" ")
    who = "another process"
    if pid_text.isdigit():
        pid = int(pid_text)
        who = f"PID {pid}" + (f" ({command})" if command else "")
        if not _running(pid):
            holders = [p for p in _holders(path) if p != os.getpid()]
            who += " which has exited, but a process it started still holds the lock" + (
                f": PID {', '.join(map(str, holders))}" if holders else ""
            )
    return (
        f"data folder {folder} is in use by {who} (lock {path.name}); "
        "stop it first, or use another data folder (--data)"
    )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holders(path: Path) -> list[int]:
    """PIDs with `path` open (those this user may look at), from /proc."""
    found = []
    target = str(path)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == target:
                    found.append(int(proc.name))
                    break
        except OSError:
            continue
    return sorted(found)


__all__ = ["DataFolderBusy", "DataLock", "die_with_parent", "lock_path", "port_free"]
