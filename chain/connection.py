"""The connection to a WattChain node: connect with retry, reconnect when the node restarts,
raw JSON-RPC, blocks and their events, and storage reads by name. substrate-interface (in
maintenance) is used only inside this package, so an upgrade touches one folder."""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from substrateinterface import SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException
from substrateinterface.utils.hasher import xxh128

from market import SS58_FORMAT

from .errors import CONNECTION_ERRORS, ChainError, ChainUnavailable
from .events import EventDecoder

log = logging.getLogger("wattchain.chain")

PALLET = "EnergyTrading"
DEFAULT_URL = "ws://127.0.0.1:9944"
# The longest wait between two tries to reach a node that is away. A refused connection costs
# nothing, and every second between the node answering again and its clients noticing is a
# second that orders in flight lose towards their gate.
RETRY_MAX_S = 0.5

# scalecodec keeps type registries in shared state: two threads decoding metadata at once can
# see each other's half-loaded registry ("Decoder class for Compact<u32> not found").
_INIT_LOCK = threading.Lock()


def settle_heap() -> None:
    """Puts what this process holds now out of the cyclic garbage collector's reach, for a
    long-running process to call once it has connected (the API's chain view, the workers).

    A connection's metadata and type registry are about 140,000 objects that live as long as
    it does. The collector's full passes walked them all, about every 5 s under `make
    loadtest`, and stopped every thread of the API for 160-210 ms each time: the p99 of an
    order's answer. Frozen, they are still freed by reference counting; unfreezing first lets
    one last collection free what earlier connections left in cycles."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class Event:
    pallet: str
    name: str
    attributes: Any
    extrinsic_index: int | None  # None for initialization/finalization events
    index: int  # position in the block's event list


@dataclass
class Block:
    number: int
    hash: str
    timestamp_ms: int | None
    events: list[Event]


# Decoded events by (genesis, block hash), shared by every connection of the process: the
# relayer (when a batch of its fails) and the indexer read the same blocks.
_EVENTS_CACHED = 64
_EVENTS: OrderedDict[tuple[str, str], tuple[Event, ...]] = OrderedDict()
_EVENTS_LOCK = threading.Lock()
_EVENTS_KEY = "0x" + (xxh128(b"System") + xxh128(b"Events")).hex()
_DECODERS: dict[int, EventDecoder] = {}  # by runtime spec version (built once, then read only)


class ChainConnection:
    """The transport and generic reads. `Chain` (chain/__init__) adds the pallet's reads and
    the transactions on top; use that."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        connect_timeout_s: float = 60.0,
        rpc_timeout_s: float = 30.0,
        retry_s: float = 30.0,
    ):
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.rpc_timeout_s = rpc_timeout_s
        self.retry_s = retry_s  # how long a call keeps reconnecting before giving up
        self._substrate: SubstrateInterface | None = None
        self._genesis: str | None = None
        self._block_tx_cache: OrderedDict[str, list[str]] = OrderedDict()
        self.reconnects = 0
        # Connections made, the first one included: when it changes, the node may be one that
        # restarted, its transaction pool emptied.
        self.opened = 0

    # -- connection -------------------------------------------------------------------------
    def connect(self, timeout_s: float | None = None) -> ChainConnection:
        """Connect, retrying until the node answers or `timeout_s` passes."""
        deadline = time.monotonic() + (self.connect_timeout_s if timeout_s is None else timeout_s)
        delay, last = 0.1, None
        while True:
            try:
                self._open()
                return self
            except CONNECTION_ERRORS + (SubstrateRequestException,) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise ChainUnavailable(f"cannot reach node at {self.url}: {last}")
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _open(self) -> None:
        self.close()
        with _INIT_LOCK:
            substrate = SubstrateInterface(
                url=self.url,
                ss58_format=SS58_FORMAT,
                auto_reconnect=False,
                # The node's JSON is ASCII (hex), and websocket-client's check of each frame's
                # UTF-8, in pure Python, took a tenth of the workers' time under load.
                ws_options={"timeout": self.rpc_timeout_s, "skip_utf8_validation": True},
            )
            substrate.init_runtime()
        genesis = substrate.get_block_hash(0)
        if self._genesis is not None and genesis != self._genesis:
            log.warning(
                "node at %s has a new genesis %s (was %s): a new chain",
                self.url,
                genesis,
                self._genesis,
            )
        # A (re)connection may meet a restarted node whose pool is gone, or a fresh dev chain
        # with the same genesis as an earlier one: the nonces counted so far mean nothing there.
        # The node's own next index (which includes its pool) is read again on the next submit.
        self._reconnected(genesis)
        self._genesis = genesis
        self._substrate = substrate
        self._block_tx_cache.clear()
        self.opened += 1

    def close(self) -> None:
        if self._substrate is not None:
            try:
                self._substrate.close()
            except Exception:  # closing a dead socket may raise anything
                pass
            self._substrate = None

    def __enter__(self) -> ChainConnection:
        if self._substrate is None:
            self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def substrate(self) -> SubstrateInterface:
        if self._substrate is None:
            self.connect()
        return self._substrate

    def _call(self, fn: Callable[[SubstrateInterface], Any]) -> Any:
        """Run fn(substrate), reconnecting (for up to retry_s) when the connection drops."""
        deadline = time.monotonic() + self.retry_s
        delay = 0.1
        while True:
            try:
                return fn(self.substrate)
            except ChainError:
                raise
            except CONNECTION_ERRORS as exc:
                log.warning(
                    "connection to %s lost (%s); reconnecting", self.url, exc.__class__.__name__
                )
                self.close()
                if time.monotonic() >= deadline:
                    raise ChainUnavailable(f"node at {self.url} unreachable: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                try:
                    self._open()
                    self.reconnects += 1
                except CONNECTION_ERRORS + (SubstrateRequestException,):
                    continue

    def rpc(self, method: str, params: list | None = None) -> Any:
        """A raw JSON-RPC call; returns its `result` (None for what the node does not have),
        raises ChainError('RpcError') when the node answers with an error."""
        response = self._call(lambda s: s.rpc_request(method, params or []))
        if "error" in response:
            # Never a silent None: a storage read that fails would leave a gap in a book.
            error = response["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ChainError("RpcError", f"{method}: {message}")
        return response.get("result")

    # -- blocks -----------------------------------------------------------------------------
    @property
    def genesis_hash_hex(self) -> str:
        if self._genesis is None:
            self.connect()
        return self._genesis

    @property
    def genesis_hash(self) -> bytes:
        return bytes.fromhex(self.genesis_hash_hex[2:])

    def best_number(self) -> int:
        return int(self.rpc("chain_getHeader")["number"], 16)

    def finalized_hash(self) -> str:
        return self.rpc("chain_getFinalizedHead")

    def finalized_number(self) -> int:
        return self.block_number(self.finalized_hash())

    def block_number(self, block_hash: str) -> int:
        header = self.rpc("chain_getHeader", [block_hash])
        if header is None:
            raise ChainError("UnknownBlock", block_hash)
        return int(header["number"], 16)

    def block_hash(self, number: int) -> str | None:
        return self.rpc("chain_getBlockHash", [number])

    def timestamp_ms(self, block_hash: str | None = None) -> int:
        """The block's `Timestamp.Now` (unix ms): the clock the pallet's gates use."""
        return int(self.query("Timestamp", "Now", block_hash=block_hash) or 0)

    def block_extrinsic_hashes(self, block_hash: str) -> list[str]:
        cached = self._block_tx_cache.get(block_hash)
        if cached is not None:
            return cached
        block = self.rpc("chain_getBlock", [block_hash])
        if block is None:
            raise ChainError("UnknownBlock", block_hash)
        hashes = [
            "0x" + hashlib.blake2b(bytes.fromhex(x[2:]), digest_size=32).hexdigest()
            for x in block["block"]["extrinsics"]
        ]
        self._block_tx_cache[block_hash] = hashes
        while len(self._block_tx_cache) > 256:
            self._block_tx_cache.popitem(last=False)
        return hashes

    def events(self, block_hash: str) -> list[Event]:
        key = (self.genesis_hash_hex, block_hash)
        with _EVENTS_LOCK:
            cached = _EVENTS.get(key)
        if cached is not None:
            return list(cached)
        raw, decoder = self._call(lambda s: self._raw_events(s, block_hash))
        events = [
            Event(pallet, name, attributes, extrinsic_index, i)
            for i, (pallet, name, attributes, extrinsic_index) in enumerate(decoder.decode(raw))
        ]
        with _EVENTS_LOCK:
            _EVENTS[key] = tuple(events)
            while len(_EVENTS) > _EVENTS_CACHED:
                _EVENTS.popitem(last=False)
        return events

    def _raw_events(self, s: SubstrateInterface, block_hash: str) -> tuple[bytes, EventDecoder]:
        """The block's `System.Events`, raw, and the decoder of its runtime."""
        s.init_runtime(block_hash=block_hash)  # the block's own runtime, cached by version
        version = s.runtime_version
        decoder = _DECODERS.get(version)
        if decoder is None:
            events = s.metadata.get_metadata_pallet("System").get_storage_function("Events")
            registry = s.metadata.portable_registry.value["types"]
            decoder = _DECODERS[version] = EventDecoder(registry, events.value["type"]["Plain"])
        raw = s.rpc_request("state_getStorage", [_EVENTS_KEY, block_hash]).get("result")
        return (bytes.fromhex(raw[2:]) if raw else b"\x00"), decoder

    def block(self, number: int, *, with_events: bool = True) -> Block:
        block_hash = self.block_hash(number)
        if block_hash is None:
            raise ChainError("UnknownBlock", f"no block #{number}")
        return Block(
            number,
            block_hash,
            self.timestamp_ms(block_hash),
            self.events(block_hash) if with_events else [],
        )

    def follow_finalized(
        self, start: int, *, poll_s: float = 0.5, stop: Callable[[], bool] = lambda: False
    ) -> Iterator[Block]:
        """Yield every finalized block from number `start` on, in order, forever (until stop()).
        Survives node restarts (it reconnects and carries on from the next number)."""
        number = start
        while not stop():
            try:
                finalized = self.finalized_number()
            except ChainUnavailable:
                time.sleep(poll_s)
                continue
            if number > finalized:
                time.sleep(poll_s)
                continue
            yield self.block(number)
            number += 1

    # -- storage ----------------------------------------------------------------------------
    def query(
        self, module: str, item: str, params: list | None = None, block_hash: str | None = None
    ) -> Any:
        obj = self._call(lambda s: s.query(module, item, params or [], block_hash=block_hash))
        return None if obj is None else obj.value

    def query_map(
        self,
        module: str,
        item: str,
        params: list | None = None,
        block_hash: str | None = None,
        page_size: int = 500,
    ) -> list[tuple[Any, Any]]:
        def run(s: SubstrateInterface):
            result = s.query_map(
                module, item, params or [], block_hash=block_hash, page_size=page_size
            )
            return [(k.value, v.value) for k, v in result]

        return self._call(run)

    def query_multi(
        self, module: str, item: str, keys: Sequence[list], block_hash: str | None = None
    ) -> list[Any]:
        if not keys:
            return []

        def run(s: SubstrateInterface):
            storage_keys = [s.create_storage_key(module, item, list(k)) for k in keys]
            out: list[Any] = []
            for start in range(0, len(storage_keys), 1000):
                out.extend(
                    v.value if v is not None else None
                    for _, v in s.query_multi(
                        storage_keys[start : start + 1000], block_hash=block_hash
                    )
                )
            return out

        return self._call(run)

    def constant(self, module: str, name: str) -> Any:
        obj = self._call(lambda s: s.get_constant(module, name))
        return None if obj is None else obj.value

    def _reconnected(self, genesis: str) -> None:
        """Called after every (re)connection; the transaction layer forgets its nonces here."""
