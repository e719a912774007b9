"""Starting a dev node: where the binary is (WATTCHAIN_NODE, or what `make node` builds), free
loopback ports, and a child process that is waited for until its RPC answers. The node dies with
the process that started it (`lifecycle.die_with_parent`), kill -9 of that process included."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .lifecycle import die_with_parent, port_free

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = (
    Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/wattchain/target"))
    / "debug/wattchain-node"
)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary() -> Path | None:
    """WATTCHAIN_NODE if set, else the path `make node` builds to, else wattchain-node on PATH."""
    env = os.environ.get("WATTCHAIN_NODE")
    if env:
        return Path(env) if Path(env).is_file() else None
    if DEFAULT_BINARY.is_file():
        return DEFAULT_BINARY
    found = shutil.which("wattchain-node")
    return Path(found) if found else None


def build_binary(out=sys.stderr) -> Path:
    """Run `make node` (its progress goes to `out`); the last line it prints is the binary."""
    if not (REPO_ROOT / "Makefile").is_file():
        raise RuntimeError("no wattchain-node binary: set WATTCHAIN_NODE to one")
    print(
        "[wattchain] no node binary yet: running `make node` (a cold build takes a while)",
        file=out,
        flush=True,
    )
    proc = subprocess.run(
        ["make", "-s", "node"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=out, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"`make node` failed with exit code {proc.returncode}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    path = Path(lines[-1].strip()) if lines else DEFAULT_BINARY
    if not path.is_file():
        raise RuntimeError(f"`make node` did not produce {path}")
    return path


class DevNode:
    """`wattchain-node --dev` as a child process, on free loopback ports.

    base_path=None runs with --tmp (a fresh chain every start); with a base path the chain
    survives restarts (stop() then start() again, or launch() again after it died). `keep_fds`
    are passed on to the node (the data folder's lock: held until the node has exited)."""

    def __init__(
        self,
        binary: str | os.PathLike | None = None,
        *,
        base_path: str | os.PathLike | None = None,
        rpc_port: int | None = None,
        log_path: str | os.PathLike | None = None,
        extra_args: list[str] | None = None,
        keep_fds: tuple[int, ...] = (),
    ):
        found = Path(binary) if binary else find_binary()
        if found is None or not found.is_file():
            raise FileNotFoundError(
                "wattchain-node not found "
                f"({binary or os.environ.get('WATTCHAIN_NODE') or DEFAULT_BINARY})"
            )
        self.binary = found
        self.base_path = Path(base_path) if base_path else None
        self.rpc_port = rpc_port or free_port()
        self.prometheus_port = free_port()
        self.p2p_port = free_port()
        self.log_path = Path(log_path) if log_path else None
        self.extra_args = extra_args or []
        self.keep_fds = keep_fds
        self.process: subprocess.Popen | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.rpc_port}"

    def command(self) -> list[str]:
        cmd = [
            str(self.binary),
            "--dev",
            "--rpc-port",
            str(self.rpc_port),
            "--prometheus-port",
            str(self.prometheus_port),
            "--port",
            str(self.p2p_port),
            "--no-mdns",
            "--no-telemetry",
            "--rpc-max-connections",
            "1000",
        ]
        cmd += ["--base-path", str(self.base_path)] if self.base_path else ["--tmp"]
        return cmd + self.extra_args

    def start(self, timeout_s: float = 120.0) -> DevNode:
        self.launch()
        self.wait_ready(timeout_s)
        return self

    def launch(self) -> DevNode:
        """Start the process (again, after it died) without waiting for it. Refuses if something
        already listens on the RPC port: it would answer for this node (another node left
        running, say) while this one fails to bind and exits."""
        if not port_free(self.rpc_port):
            raise RuntimeError(
                f"RPC port {self.rpc_port} is in use (another node still running?); "
                "stop it or choose another port (--rpc-port)"
            )
        for attr in ("prometheus_port", "p2p_port"):  # taken meanwhile (a restart): pick again
            if not port_free(getattr(self, attr)):
                setattr(self, attr, free_port())
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")
            out = self._log_file
        else:
            out = subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
            pass_fds=self.keep_fds,
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until the RPC answers and the chain has produced a block."""
        from chain import Chain, ChainUnavailable

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"wattchain-node exited with {self.process.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                with socket.create_connection(("127.0.0.1", self.rpc_port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            chain = Chain(self.url, connect_timeout_s=5)
            try:
                chain.connect(timeout_s=5)
                if chain.best_number() >= 1 and self.alive():
                    return
            except ChainUnavailable:
                pass
            finally:
                chain.close()
            time.sleep(0.3)
        raise TimeoutError(f"wattchain-node did not produce a block within {timeout_s} s")

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> DevNode:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["DevNode", "build_binary", "find_binary", "free_port"]
