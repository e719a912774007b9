"""Errors of the chain client: what the chain refused, and a node that cannot be reached."""

from __future__ import annotations

from substrateinterface.exceptions import SubstrateRequestException
from websocket import WebSocketException

# Errors a transport can raise when the node goes away or restarts.
CONNECTION_ERRORS = (WebSocketException, ConnectionError, OSError, BrokenPipeError, TimeoutError)


class ChainError(Exception):
    """A call or extrinsic the chain refused. `name` is the pallet's error name when there is
    one (`NotEquilibrium`, `GateClosed`, ...), else a short kind (`InvalidTransaction`,
    `Dropped`, `Timeout`, `Connection`, `BadOrigin`, ...)."""

    def __init__(
        self,
        name: str,
        detail: str = "",
        *,
        pallet: str | None = None,
        tx_hash: str | None = None,
        block_hash: str | None = None,
        extrinsic_index: int | None = None,
    ):
        self.name = name
        self.detail = detail
        self.pallet = pallet
        self.tx_hash = tx_hash
        self.block_hash = block_hash
        self.extrinsic_index = extrinsic_index
        where = f"{pallet}.{name}" if pallet else name
        super().__init__(f"{where}: {detail}" if detail else where)

    @property
    def is_module_error(self) -> bool:
        return self.pallet is not None


class ChainUnavailable(ChainError):
    """The node could not be reached within the retry budget."""

    def __init__(self, detail: str):
        super().__init__("Connection", detail)


def request_error_text(exc: SubstrateRequestException) -> str:
    """The node's JSON-RPC error as one line (`1014: Priority is too low ...`)."""
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, dict):
        parts = [str(arg.get("message", "")), str(arg.get("data", "") or "")]
        code = arg.get("code")
        return (
            f"{code}: " + " ".join(p for p in parts if p)
            if code is not None
            else " ".join(p for p in parts if p)
        )
    return str(arg)
