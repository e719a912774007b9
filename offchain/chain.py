"""WattChain's one wrapper around substrate-interface (in maintenance; every call to it lives here).

It connects with retry and reconnects when the node restarts, builds and verifies the signed
messages of docs/chain-interface.md byte for byte, signs and submits extrinsics with locally
tracked nonces (resynced on error), follows blocks to find where an extrinsic landed, turns an
`ExtrinsicFailed` into a `ChainError` named after the pallet's error, reads the pallet's storage
and iterates finalized blocks' events for the indexer.

Accounts are SS58 strings (format 42) everywhere on the Python side; public keys are bytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import sr25519
from scalecodec.utils.ss58 import ss58_decode, ss58_encode
from substrateinterface import Keypair, KeypairType, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException
from websocket import WebSocketException

log = logging.getLogger(__name__)

PALLET = "EnergyTrading"
SS58_FORMAT = 42
DEFAULT_URL = "ws://127.0.0.1:9944"

ORDER_TAG = b"wattchain:order:v1"
CANCEL_TAG = b"wattchain:cancel:v1"
READING_TAG = b"wattchain:reading:v1"

# SCALE variant indices (docs/chain-interface.md, "Enums").
SIDES = ("bid", "offer")
SOURCES = ("solar", "wind", "hydro", "biomass", "grid_mix")
MECHANISMS = ("uniform", "pay-as-bid", "zonal")
_CHAIN_SIDE = {"bid": "Bid", "offer": "Offer"}
_CHAIN_SOURCE = {"solar": "Solar", "wind": "Wind", "hydro": "Hydro", "biomass": "Biomass", "grid_mix": "GridMix"}
_CHAIN_MECHANISM = {"uniform": "Uniform", "pay-as-bid": "PayAsBid", "zonal": "Zonal"}
U16_MAX, U64_MAX = 2**16 - 1, 2**64 - 1

_INIT_LOCK = threading.Lock()

# Errors a transport can raise when the node goes away or restarts.
_CONNECTION_ERRORS = (WebSocketException, ConnectionError, OSError, BrokenPipeError, TimeoutError)


# --------------------------------------------------------------------------------------------
# Errors


class ChainError(Exception):
    """A call or extrinsic the chain refused. `name` is the pallet's error name when there is
    one (`NotEquilibrium`, `GateClosed`, ...), else a short kind (`InvalidTransaction`,
    `Dropped`, `Timeout`, `Connection`, `BadOrigin`, ...)."""

    def __init__(self, name: str, detail: str = "", *, pallet: str | None = None, tx_hash: str | None = None,
                 block_hash: str | None = None, extrinsic_index: int | None = None):
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


# --------------------------------------------------------------------------------------------
# Keys and accounts


def keypair(suri: str) -> Keypair:
    """An sr25519 keypair from a secret URI: a dev path (`//Alice`, dev chains only), a mnemonic
    with optional derivation path, or a 0x-prefixed 32-byte seed."""
    suri = suri.strip()
    if suri.startswith("0x") and "/" not in suri:
        return Keypair.create_from_seed(suri, ss58_format=SS58_FORMAT, crypto_type=KeypairType.SR25519)
    return Keypair.create_from_uri(suri, ss58_format=SS58_FORMAT, crypto_type=KeypairType.SR25519)


def dev_keypair(name: str) -> Keypair:
    """`dev_keypair("Alice")` is //Alice. For dev chains only: everyone knows these secrets."""
    return keypair(name if name.startswith("/") else f"//{name}")


def public_key(account: str | bytes) -> bytes:
    """32-byte public key of an SS58 address, a 0x hex key or raw bytes. Raises ValueError."""
    if isinstance(account, (bytes, bytearray)):
        raw = bytes(account)
    elif isinstance(account, str) and account.startswith("0x"):
        raw = bytes.fromhex(account[2:])
    elif isinstance(account, str):
        raw = bytes.fromhex(ss58_decode(account))
    else:
        raise ValueError(f"not an account: {account!r}")
    if len(raw) != 32:
        raise ValueError(f"an account key is 32 bytes, got {len(raw)}")
    return raw


def ss58(account: str | bytes) -> str:
    """The SS58 (format 42) address of an account given as address, 0x hex or bytes."""
    return ss58_encode(public_key(account), ss58_format=SS58_FORMAT)


def verify_sr25519(public: bytes, message: bytes, signature: bytes) -> bool:
    """True only for an sr25519 signature over exactly `message` (context "substrate"), as the
    pallet checks it. (Keypair.verify would also accept a <Bytes>-wrapped message.)"""
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        return bool(sr25519.verify(bytes(signature), bytes(message), bytes(public)))
    except (ValueError, TypeError):
        return False


# --------------------------------------------------------------------------------------------
# Signed messages (docs/chain-interface.md)


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """What an order's owner signs. side: 'bid'|'offer'; source: solar|wind|hydro|biomass|grid_mix."""

    client_order_id: int
    interval: int
    side: str
    quantity_wh: int
    price_ticks: int
    zone: int = 0
    source: str = "grid_mix"
    renewable_only: bool = False

    def __post_init__(self):
        for name in ("client_order_id", "interval", "quantity_wh", "price_ticks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U64_MAX:
                raise ValueError(f"{name} must be an integer in 0..2^64-1, got {value!r}")
        if not isinstance(self.zone, int) or isinstance(self.zone, bool) or not 0 <= self.zone <= U16_MAX:
            raise ValueError(f"zone must be an integer in 0..65535, got {self.zone!r}")
        if self.side not in SIDES:
            raise ValueError(f"side must be 'bid' or 'offer', got {self.side!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if not isinstance(self.renewable_only, bool):
            raise ValueError(f"renewable_only must be a boolean, got {self.renewable_only!r}")

    def encode(self) -> bytes:
        """SCALE bytes: u64 u64 u8 u64 u64 u16 u8 u8, little-endian, no padding (37 bytes)."""
        return struct.pack("<QQBQQHBB", self.client_order_id, self.interval, SIDES.index(self.side),
                           self.quantity_wh, self.price_ticks, self.zone, SOURCES.index(self.source),
                           1 if self.renewable_only else 0)

    def to_call_arg(self) -> dict:
        """The value substrate-interface encodes for the pallet's `OrderSpec`."""
        return {"client_order_id": self.client_order_id, "interval": self.interval,
                "side": _CHAIN_SIDE[self.side], "quantity_wh": self.quantity_wh,
                "price_ticks": self.price_ticks, "zone": self.zone,
                "source": _CHAIN_SOURCE[self.source], "renewable_only": self.renewable_only}

    @classmethod
    def from_chain(cls, value: dict) -> "OrderSpec":
        return cls(client_order_id=int(value["client_order_id"]), interval=int(value["interval"]),
                   side=_from_chain_enum(value["side"], _CHAIN_SIDE), quantity_wh=int(value["quantity_wh"]),
                   price_ticks=int(value["price_ticks"]), zone=int(value["zone"]),
                   source=_from_chain_enum(value["source"], _CHAIN_SOURCE),
                   renewable_only=bool(value["renewable_only"]))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _from_chain_enum(value: Any, names: dict[str, str]) -> str:
    if isinstance(value, dict):  # a unit variant may decode as {"Name": None}
        (value,) = value.keys()
    for ours, theirs in names.items():
        if value == theirs:
            return ours
    raise ValueError(f"unknown variant {value!r}")


def order_message(genesis_hash: bytes, owner: bytes, spec: OrderSpec) -> bytes:
    """`b"wattchain:order:v1" ++ genesis_hash[32] ++ owner[32] ++ OrderSpec`."""
    _check_len("genesis hash", genesis_hash, 32)
    _check_len("owner", owner, 32)
    return ORDER_TAG + bytes(genesis_hash) + bytes(owner) + spec.encode()


def cancel_message(genesis_hash: bytes, owner: bytes, client_order_id: int) -> bytes:
    """`b"wattchain:cancel:v1" ++ genesis_hash[32] ++ owner[32] ++ client_order_id u64`."""
    _check_len("genesis hash", genesis_hash, 32)
    _check_len("owner", owner, 32)
    if not 0 <= client_order_id <= U64_MAX:
        raise ValueError("client_order_id must fit u64")
    return CANCEL_TAG + bytes(genesis_hash) + bytes(owner) + struct.pack("<Q", client_order_id)


def reading_message(meter: bytes, interval: int, counter: int, import_wh: int, export_wh: int) -> bytes:
    """`b"wattchain:reading:v1" ++ meter_public_key[32] ++ interval ++ counter ++ import_wh ++ export_wh`."""
    _check_len("meter key", meter, 32)
    return READING_TAG + bytes(meter) + struct.pack("<QQQQ", interval, counter, import_wh, export_wh)


def _check_len(what: str, value: bytes, n: int) -> None:
    if len(value) != n:
        raise ValueError(f"{what} must be {n} bytes, got {len(value)}")


@dataclass(frozen=True)
class SignedOrder:
    owner: str  # SS58
    spec: OrderSpec
    signature: bytes  # 64 bytes

    def to_call_arg(self) -> dict:
        return {"owner": self.owner, "spec": self.spec.to_call_arg(), "signature": "0x" + self.signature.hex()}


@dataclass(frozen=True)
class SignedCancel:
    owner: str
    client_order_id: int
    signature: bytes

    def to_call_arg(self) -> dict:
        return {"owner": self.owner, "client_order_id": self.client_order_id,
                "signature": "0x" + self.signature.hex()}


def sign_order(signer: Keypair, genesis_hash: bytes, spec: OrderSpec) -> SignedOrder:
    signature = bytes(signer.sign(order_message(genesis_hash, bytes(signer.public_key), spec)))
    return SignedOrder(signer.ss58_address, spec, signature)


def sign_cancel(signer: Keypair, genesis_hash: bytes, client_order_id: int) -> SignedCancel:
    signature = bytes(signer.sign(cancel_message(genesis_hash, bytes(signer.public_key), client_order_id)))
    return SignedCancel(signer.ss58_address, client_order_id, signature)


def verify_order(genesis_hash: bytes, order: SignedOrder) -> bool:
    owner = public_key(order.owner)
    return verify_sr25519(owner, order_message(genesis_hash, owner, order.spec), order.signature)


def verify_cancel(genesis_hash: bytes, cancel: SignedCancel) -> bool:
    owner = public_key(cancel.owner)
    return verify_sr25519(owner, cancel_message(genesis_hash, owner, cancel.client_order_id), cancel.signature)


# --------------------------------------------------------------------------------------------
# What the pallet stores, as plain Python


@dataclass(frozen=True)
class MarketParams:
    interval_ms: int
    gate_closure_ms: int
    min_price_ticks: int
    max_price_ticks: int
    max_quantity_wh: int
    utility_tariff_ticks: int
    feed_in_ticks: int

    def interval_start(self, interval: int) -> int:
        return interval * self.interval_ms

    def interval_end(self, interval: int) -> int:
        return (interval + 1) * self.interval_ms

    def gate_closure(self, interval: int) -> int:
        return max(0, self.interval_start(interval) - self.gate_closure_ms)

    def interval_at(self, now_ms: int) -> int:
        return now_ms // max(1, self.interval_ms)

    def first_open_interval(self, now_ms: int, margin_ms: int = 0) -> int:
        """The earliest interval whose gate closes after now + margin."""
        k = self.interval_at(now_ms + margin_ms + self.gate_closure_ms)
        while self.gate_closure(k) <= now_ms + margin_ms:
            k += 1
        return k

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ChainOrder:
    order_id: int
    owner: str
    spec: OrderSpec
    status: str  # "open" | "cancelled" | "cleared"
    filled_wh: int | None = None

    def matcher_dict(self) -> dict:
        """The order as matcher.clear_orders takes it."""
        return {"id": self.order_id, "side": self.spec.side, "quantity_wh": self.spec.quantity_wh,
                "price": self.spec.price_ticks, "zone": self.spec.zone, "source": self.spec.source,
                "renewable_only": self.spec.renewable_only}


@dataclass(frozen=True)
class ChainMatch:
    bid: int
    offer: int
    quantity_wh: int
    buyer_price: int
    seller_price: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ChainClearing:
    interval: int
    mechanism: str
    volume_wh: int
    match_count: int
    submitter: str
    block_number: int
    zone_prices: list[tuple[int, int]]
    matches: list[ChainMatch]


@dataclass(frozen=True)
class Balance:
    free: int
    reserved: int  # includes bid holds
    frozen: int

    @property
    def total(self) -> int:
        return self.free + self.reserved


@dataclass
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


@dataclass
class PendingTx:
    """A signed extrinsic handed to the node, not yet seen in a block."""

    tx_hash: str
    signer: str
    nonce: int
    call: str  # "Pallet.function"
    data: str  # 0x-hex of the signed extrinsic, so it can be broadcast again unchanged
    best_at_submit: int
    mortal_until: int  # last block number at which it can be included


@dataclass
class Receipt:
    tx_hash: str
    block_hash: str
    block_number: int
    extrinsic_index: int
    success: bool
    error: ChainError | None
    events: list[Event]
    finalized: bool = False
    call: str = ""

    def raise_for_error(self) -> "Receipt":
        if self.error is not None:
            raise self.error
        return self

    def find(self, pallet: str, name: str) -> list[Event]:
        return [e for e in self.events if e.pallet == pallet and e.name == name]


# --------------------------------------------------------------------------------------------
# Nonces: one tracker per (chain, account) in this process, shared by every Chain object.


class _NonceTracker:
    def __init__(self):
        self.lock = threading.RLock()
        self.next: int | None = None


_NONCES: dict[tuple[str, str], _NonceTracker] = {}
_NONCES_LOCK = threading.Lock()


def _tracker(genesis: str, address: str) -> _NonceTracker:
    with _NONCES_LOCK:
        return _NONCES.setdefault((genesis, address), _NonceTracker())


def _forget_nonces(genesis: str) -> None:
    with _NONCES_LOCK:
        for (g, _), tracker in _NONCES.items():
            if g == genesis:
                tracker.next = None


# Pool answers that mean "your nonce is wrong", not "your transaction is wrong".
_NONCE_PROBLEMS = ("stale", "outdated", "priority is too low", "1014")


def _is_nonce_problem(detail: str) -> bool:
    text = detail.lower()
    return any(p in text for p in _NONCE_PROBLEMS)


# --------------------------------------------------------------------------------------------
# The connection


class Chain:
    """A connection to a WattChain node. Not thread-safe: give each thread its own Chain (they
    share nonce trackers, so two threads may sign with the same account)."""

    def __init__(self, url: str = DEFAULT_URL, *, connect_timeout_s: float = 60.0, rpc_timeout_s: float = 30.0,
                 retry_s: float = 30.0):
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.rpc_timeout_s = rpc_timeout_s
        self.retry_s = retry_s  # how long a call keeps reconnecting before giving up
        self._substrate: SubstrateInterface | None = None
        self._genesis: str | None = None
        self._block_tx_cache: OrderedDict[str, list[str]] = OrderedDict()
        self.reconnects = 0

    # -- connection -------------------------------------------------------------------------
    def connect(self, timeout_s: float | None = None) -> "Chain":
        """Connect, retrying until the node answers or `timeout_s` passes."""
        deadline = time.monotonic() + (self.connect_timeout_s if timeout_s is None else timeout_s)
        delay, last = 0.2, None
        while True:
            try:
                self._open()
                return self
            except _CONNECTION_ERRORS + (SubstrateRequestException,) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise ChainUnavailable(f"cannot reach node at {self.url}: {last}")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _open(self) -> None:
        self.close()
        # scalecodec keeps type registries in shared state: two threads decoding metadata at
        # once can see each other's half-loaded registry ("Decoder class for Compact<u32> not found").
        with _INIT_LOCK:
            substrate = SubstrateInterface(url=self.url, ss58_format=SS58_FORMAT, auto_reconnect=False,
                                           ws_options={"timeout": self.rpc_timeout_s})
            substrate.init_runtime()
        genesis = substrate.get_block_hash(0)
        if self._genesis is not None and genesis != self._genesis:
            log.warning("node at %s has a new genesis %s (was %s): a new chain", self.url, genesis, self._genesis)
        # A (re)connection may meet a restarted node whose pool is gone, or a fresh dev chain
        # with the same genesis as an earlier one: the nonces counted so far mean nothing there.
        # The node's own next index (which includes its pool) is read again on the next submit.
        _forget_nonces(genesis)
        self._genesis = genesis
        self._substrate = substrate
        self._block_tx_cache.clear()

    def close(self) -> None:
        if self._substrate is not None:
            try:
                self._substrate.close()
            except Exception:  # closing a dead socket may raise anything
                pass
            self._substrate = None

    def __enter__(self) -> "Chain":
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
        delay = 0.2
        while True:
            try:
                return fn(self.substrate)
            except ChainError:
                raise
            except _CONNECTION_ERRORS as exc:
                log.warning("connection to %s lost (%s); reconnecting", self.url, exc.__class__.__name__)
                self.close()
                if time.monotonic() >= deadline:
                    raise ChainUnavailable(f"node at {self.url} unreachable: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                try:
                    self._open()
                    self.reconnects += 1
                except _CONNECTION_ERRORS + (SubstrateRequestException,):
                    continue

    def rpc(self, method: str, params: list | None = None) -> Any:
        """A raw JSON-RPC call; returns its `result`."""
        response = self._call(lambda s: s.rpc_request(method, params or []))
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
        hashes = ["0x" + hashlib.blake2b(bytes.fromhex(x[2:]), digest_size=32).hexdigest()
                  for x in block["block"]["extrinsics"]]
        self._block_tx_cache[block_hash] = hashes
        while len(self._block_tx_cache) > 256:
            self._block_tx_cache.popitem(last=False)
        return hashes

    def events(self, block_hash: str) -> list[Event]:
        records = self._call(lambda s: s.get_events(block_hash))
        events = []
        for i, record in enumerate(records):
            v = record.value
            events.append(Event(pallet=v["module_id"], name=v["event_id"], attributes=v.get("attributes"),
                                extrinsic_index=v.get("extrinsic_idx") if v.get("phase") == "ApplyExtrinsic" else None,
                                index=i))
        return events

    def block(self, number: int, *, with_events: bool = True) -> Block:
        block_hash = self.block_hash(number)
        if block_hash is None:
            raise ChainError("UnknownBlock", f"no block #{number}")
        return Block(number, block_hash, self.timestamp_ms(block_hash),
                     self.events(block_hash) if with_events else [])

    def follow_finalized(self, start: int, *, poll_s: float = 0.5,
                         stop: Callable[[], bool] = lambda: False) -> Iterator[Block]:
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
    def query(self, module: str, item: str, params: list | None = None, block_hash: str | None = None) -> Any:
        obj = self._call(lambda s: s.query(module, item, params or [], block_hash=block_hash))
        return None if obj is None else obj.value

    def query_map(self, module: str, item: str, params: list | None = None,
                  block_hash: str | None = None, page_size: int = 500) -> list[tuple[Any, Any]]:
        def run(s: SubstrateInterface):
            result = s.query_map(module, item, params or [], block_hash=block_hash, page_size=page_size)
            return [(k.value, v.value) for k, v in result]
        return self._call(run)

    def query_multi(self, module: str, item: str, keys: Sequence[list], block_hash: str | None = None) -> list[Any]:
        if not keys:
            return []

        def run(s: SubstrateInterface):
            storage_keys = [s.create_storage_key(module, item, list(k)) for k in keys]
            out: list[Any] = []
            for start in range(0, len(storage_keys), 1000):
                out.extend(v.value if v is not None else None
                           for _, v in s.query_multi(storage_keys[start:start + 1000], block_hash=block_hash))
            return out
        return self._call(run)

    def constant(self, module: str, name: str) -> Any:
        obj = self._call(lambda s: s.get_constant(module, name))
        return None if obj is None else obj.value

    def market_params(self, block_hash: str | None = None) -> MarketParams:
        v = self.query(PALLET, "Params", block_hash=block_hash)
        return MarketParams(**{f.name: int(v[f.name]) for f in dataclasses.fields(MarketParams)})

    def participant_zone(self, account: str, block_hash: str | None = None) -> int | None:
        v = self.query(PALLET, "Participants", [ss58(account)], block_hash=block_hash)
        return None if v is None else int(v["zone"])

    def participants(self, block_hash: str | None = None) -> dict[str, int]:
        return {ss58(k): int(v["zone"]) for k, v in self.query_map(PALLET, "Participants", block_hash=block_hash)}

    def distributor(self, block_hash: str | None = None) -> str | None:
        v = self.query(PALLET, "Distributor", block_hash=block_hash)
        return None if v is None else ss58(v)

    def market_operator(self, block_hash: str | None = None) -> str | None:
        v = self.query(PALLET, "MarketOperator", block_hash=block_hash)
        return None if v is None else ss58(v)

    def interval_order_ids(self, interval: int, block_hash: str | None = None) -> list[int]:
        return [int(i) for i in self.query(PALLET, "IntervalOrders", [interval], block_hash=block_hash) or []]

    @staticmethod
    def _order(order_id: int, v: dict) -> ChainOrder:
        status = v["status"]
        filled = None
        if isinstance(status, dict):  # Cleared { filled_wh }
            (name, inner), = status.items()
            if isinstance(inner, dict):
                filled = int(inner["filled_wh"])
            status = name
        return ChainOrder(order_id, ss58(v["owner"]), OrderSpec.from_chain(v["spec"]), str(status).lower(), filled)

    def orders(self, order_ids: Sequence[int], block_hash: str | None = None) -> list[ChainOrder]:
        values = self.query_multi(PALLET, "Orders", [[i] for i in order_ids], block_hash=block_hash)
        return [self._order(i, v) for i, v in zip(order_ids, values) if v is not None]

    def order(self, order_id: int, block_hash: str | None = None) -> ChainOrder | None:
        v = self.query(PALLET, "Orders", [order_id], block_hash=block_hash)
        return None if v is None else self._order(order_id, v)

    def orders_of_interval(self, interval: int, block_hash: str | None = None) -> list[ChainOrder]:
        """Every order of the interval's book (any status), in placement order."""
        return self.orders(self.interval_order_ids(interval, block_hash), block_hash)

    def client_order_id(self, owner: str, client_order_id: int, block_hash: str | None = None) -> int | None:
        v = self.query(PALLET, "ClientOrders", [ss58(owner), client_order_id], block_hash=block_hash)
        return None if v is None else int(v)

    def clearing(self, interval: int, block_hash: str | None = None) -> ChainClearing | None:
        summary = self.query(PALLET, "Clearings", [interval], block_hash=block_hash)
        if summary is None:
            return None
        matches = self.query(PALLET, "ClearingMatches", [interval], block_hash=block_hash) or []
        prices = self.query(PALLET, "ClearingPrices", [interval], block_hash=block_hash) or []
        return ChainClearing(
            interval=interval,
            mechanism=_from_chain_enum(summary["mechanism"], _CHAIN_MECHANISM),
            volume_wh=int(summary["volume_wh"]), match_count=int(summary["match_count"]),
            submitter=ss58(summary["submitter"]), block_number=int(summary["block"]),
            zone_prices=[(int(p["zone"]), int(p["price"])) for p in prices],
            matches=[ChainMatch(int(m["bid"]), int(m["offer"]), int(m["quantity_wh"]), int(m["buyer_price"]),
                                int(m["seller_price"])) for m in matches])

    def is_cleared(self, interval: int, block_hash: str | None = None) -> bool:
        return self.query(PALLET, "Clearings", [interval], block_hash=block_hash) is not None

    def settlement_params(self, interval: int) -> dict:
        """The arguments of `settle_interval`: the interval and the counts that price the call
        (its matches and its metered participants), read from the chain now."""
        matches = self.query(PALLET, "ClearingMatches", [interval]) or []
        metered = self.query(PALLET, "MeteredCount", [interval]) or 0
        return {"interval": interval, "matches": len(matches), "metered": int(metered)}

    def settled_at(self, interval: int, block_hash: str | None = None) -> int | None:
        v = self.query(PALLET, "Settled", [interval], block_hash=block_hash)
        return None if v is None else int(v)

    def settlement_lines(self, interval: int, block_hash: str | None = None) -> dict[str, dict]:
        return {ss58(k): {n: int(x) for n, x in v.items()}
                for k, v in self.query_map(PALLET, "Settlements", [interval], block_hash=block_hash)}

    def metered(self, interval: int, block_hash: str | None = None) -> dict[str, dict]:
        return {ss58(k): {n: int(x) for n, x in v.items()}
                for k, v in self.query_map(PALLET, "Metered", [interval], block_hash=block_hash)}

    def meters(self, block_hash: str | None = None) -> dict[str, dict]:
        """Accredited meters by 0x public key: owner, zone, source, rated_power_w, last registers."""
        out = {}
        for key, v in self.query_map(PALLET, "Meters", block_hash=block_hash):
            key_hex = key if isinstance(key, str) else "0x" + bytes(key).hex()
            out[key_hex] = {"owner": ss58(v["owner"]), "zone": int(v["zone"]),
                            "source": _from_chain_enum(v["source"], _CHAIN_SOURCE),
                            "rated_power_w": int(v["rated_power_w"]), "last": v["last"]}
        return out

    def balance(self, account: str, block_hash: str | None = None) -> Balance:
        v = self.query("System", "Account", [ss58(account)], block_hash=block_hash)
        data = v["data"]
        return Balance(int(data["free"]), int(data["reserved"]), int(data.get("frozen", 0)))

    def energy_balance(self, account: str, block_hash: str | None = None) -> int:
        return int(self.query(PALLET, "EnergyBalance", [ss58(account)], block_hash=block_hash) or 0)

    def account_next_nonce(self, account: str) -> int:
        """The next nonce, counting transactions already in the node's pool."""
        return int(self.rpc("system_accountNextIndex", [ss58(account)]))

    # -- extrinsics -------------------------------------------------------------------------
    def sign(self, signer: Keypair, function: str, params: dict, *, module: str = PALLET, nonce: int | None = None,
             era_period: int = 64) -> PendingTx:
        """Compose and sign a call with the given nonce (default: the next tracked one). The
        result is not submitted yet; `broadcast` it (as many times as needed)."""
        def run(s: SubstrateInterface):
            call = s.compose_call(call_module=module, call_function=function,
                                  call_params=_encodable(s, module, function, params))
            best = int(s.rpc_request("chain_getHeader", [])["result"]["number"], 16)
            extrinsic = s.create_signed_extrinsic(call=call, keypair=signer, nonce=nonce,
                                                   era={"period": era_period})
            return extrinsic, best
        extrinsic, best = self._call(run)
        return PendingTx(tx_hash="0x" + extrinsic.extrinsic_hash.hex(), signer=signer.ss58_address, nonce=nonce,
                         call=f"{module}.{function}", data=str(extrinsic.data), best_at_submit=best,
                         mortal_until=best + era_period)

    def broadcast(self, tx: PendingTx) -> PendingTx:
        """Hand a signed extrinsic to the node. Sending the same bytes again is harmless: the
        pool knows them already, or they were included (and cannot be included twice)."""
        try:
            self._call(lambda s: s.rpc_request("author_submitExtrinsic", [tx.data]))
        except SubstrateRequestException as exc:
            detail = _request_error_text(exc)
            if "already imported" in detail.lower() or "1013" in detail:
                return tx
            raise ChainError("InvalidTransaction", detail, tx_hash=tx.tx_hash) from None
        return tx

    def submit(self, signer: Keypair, function: str, params: dict, *, module: str = PALLET,
               wait: str | None = "inclusion", timeout_s: float = 60.0, era_period: int = 64) -> Receipt | PendingTx:
        """Sign with the account's next nonce and submit. wait: None (return the PendingTx),
        "inclusion" or "finality" (return the Receipt; raise ChainError if it failed)."""
        tx = self.submit_nowait(signer, function, params, module=module, era_period=era_period)
        if wait is None:
            return tx
        return self.wait([tx], finality=(wait == "finality"), timeout_s=timeout_s)[0].raise_for_error()

    def submit_nowait(self, signer: Keypair, function: str, params: dict, *, module: str = PALLET,
                      era_period: int = 64, before_broadcast: Callable[[PendingTx], None] | None = None) -> PendingTx:
        """Sign with the tracked nonce and broadcast; on a nonce problem resync and retry (at
        most twice). `before_broadcast(tx)` runs after signing and before the node sees the tx,
        e.g. to log its bytes durably so a restart can broadcast the very same extrinsic."""
        tracker = _tracker(self.genesis_hash_hex, signer.ss58_address)
        with tracker.lock:
            for attempt in range(3):
                if tracker.next is None:
                    tracker.next = self.account_next_nonce(signer.ss58_address)
                nonce = tracker.next
                tx = self.sign(signer, function, params, module=module, nonce=nonce, era_period=era_period)
                if before_broadcast is not None:
                    before_broadcast(tx)
                try:
                    self.broadcast(tx)
                except ChainError as exc:
                    tracker.next = None  # after any refusal the pool's view is the safe one
                    if _is_nonce_problem(exc.detail) and attempt < 2:
                        log.info("nonce %d of %s refused (%s); resyncing", nonce, signer.ss58_address, exc.detail)
                        continue
                    raise
                # A reconnect during sign/broadcast forgets nonces; then the pool decides next time.
                if tracker.next == nonce:
                    tracker.next = nonce + 1
                return tx
        raise AssertionError("unreachable")

    def resync_nonce(self, account: str) -> None:
        _tracker(self.genesis_hash_hex, ss58(account)).next = None

    def watcher(self, *, finality: bool = False) -> "ReceiptWatcher":
        return ReceiptWatcher(self, finality=finality)

    def wait(self, txs: Sequence[PendingTx], *, finality: bool = False, timeout_s: float = 60.0,
             poll_s: float = 0.25) -> list[Receipt]:
        """Follow the best chain until every tx is in a block (and, with finality, that block is
        finalized). Receipts come back in the order of `txs`; a failed dispatch is a Receipt
        with `error` set. Raises ChainError('Dropped') when a tx outlives its mortality and
        ChainError('Timeout') after timeout_s."""
        watcher = self.watcher(finality=finality)
        for tx in txs:
            watcher.add(tx)
        receipts: dict[str, Receipt] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            ready, dropped = watcher.poll()
            if dropped:
                raise dropped[0]
            for r in ready:
                receipts[r.tx_hash] = r
            if len(receipts) == len(txs):
                return [receipts[tx.tx_hash] for tx in txs]
            if time.monotonic() > deadline:
                missing = [tx for tx in txs if tx.tx_hash not in receipts]
                for tx in missing:
                    self.resync_nonce(tx.signer)
                raise ChainError("Timeout", f"not {'finalized' if finality else 'included'} after "
                                 f"{timeout_s:.0f} s: {', '.join(tx.tx_hash for tx in missing)}",
                                 tx_hash=missing[0].tx_hash)
            time.sleep(poll_s)

    def _receipt(self, tx: PendingTx, block_hash: str, number: int, index: int, events: list[Event]) -> Receipt:
        mine = [e for e in events if e.extrinsic_index == index]
        error = None
        success = True
        for e in mine:
            if e.pallet == "System" and e.name == "ExtrinsicFailed":
                success = False
                error = self._dispatch_error(e.attributes, tx, block_hash, index)
        return Receipt(tx.tx_hash, block_hash, number, index, success, error, mine, call=tx.call)

    def _dispatch_error(self, attributes: Any, tx: PendingTx, block_hash: str, index: int) -> ChainError:
        dispatch_error = attributes["dispatch_error"] if isinstance(attributes, dict) else attributes[0]
        where = dict(tx_hash=tx.tx_hash, block_hash=block_hash, extrinsic_index=index)
        if isinstance(dispatch_error, dict) and "Module" in dispatch_error:
            module = dispatch_error["Module"]
            if isinstance(module, (tuple, list)):
                module_index, error_index = module[0], module[1]
            else:
                module_index, error_index = module["index"], module["error"]
            if isinstance(error_index, str):  # [u8; 4]: the first byte is the variant
                error_index = int(error_index[2:4], 16)
            elif isinstance(error_index, (bytes, list)):
                error_index = error_index[0]
            pallet = self._pallet_name(module_index)
            error = self.substrate.metadata.get_module_error(module_index=module_index, error_index=error_index)
            docs = " ".join(error.docs).strip() if error is not None and error.docs else ""
            return ChainError(error.name if error is not None else f"Error{error_index}", docs, pallet=pallet, **where)
        if isinstance(dispatch_error, dict):
            (name, inner), = dispatch_error.items()
            return ChainError(str(name), "" if inner is None else str(inner), **where)
        return ChainError(str(dispatch_error), **where)

    def _pallet_name(self, module_index: int) -> str | None:
        for pallet in self.substrate.metadata.pallets:
            if pallet["index"] == module_index:
                return pallet.name
        return None

    # -- conveniences for the market --------------------------------------------------------
    def place_orders_relayed(self, relayer: Keypair, orders: Iterable[SignedOrder], **kwargs):
        return self.submit(relayer, "place_orders_relayed", {"orders": [o.to_call_arg() for o in orders]}, **kwargs)

    def cancel_orders_relayed(self, relayer: Keypair, cancels: Iterable[SignedCancel], **kwargs):
        return self.submit(relayer, "cancel_orders_relayed", {"cancels": [c.to_call_arg() for c in cancels]},
                           **kwargs)

    @staticmethod
    def clearing_params(interval: int, mechanism: str, volume_wh: int, zone_prices: Iterable[tuple[int, int]],
                        matches: Iterable[dict], book_orders: int) -> dict:
        """The arguments of `submit_clearing`, from plain values (matches as dicts with bid,
        offer, quantity_wh, buyer_price, seller_price). `book_orders` is the size of the
        interval's book (cancelled orders included): the pallet prices the call by it."""
        return {"interval": interval, "mechanism": _CHAIN_MECHANISM[mechanism], "volume_wh": int(volume_wh),
                "book_orders": int(book_orders),
                "zone_prices": [{"zone": int(z), "price": int(p)} for z, p in zone_prices],
                "matches": [{"bid": int(m["bid"]), "offer": int(m["offer"]), "quantity_wh": int(m["quantity_wh"]),
                             "buyer_price": int(m["buyer_price"]), "seller_price": int(m["seller_price"])}
                            for m in matches]}

    @staticmethod
    def reading_params(meter: str | bytes, interval: int, counter: int, import_wh: int, export_wh: int,
                       signature: str | bytes) -> dict:
        meter_hex = "0x" + public_key(meter).hex()
        sig_hex = signature if isinstance(signature, str) else "0x" + bytes(signature).hex()
        return {"reading": {"meter": meter_hex, "interval": interval, "counter": counter, "import_wh": import_wh,
                            "export_wh": export_wh}, "signature": sig_hex}

    def encode_call_args(self, function: str, params: dict, module: str = PALLET) -> bytes:
        """The SCALE bytes of a call's arguments (the call data without its 2-byte index)."""
        call = self._call(lambda s: s.compose_call(call_module=module, call_function=function,
                                                   call_params=_encodable(s, module, function, params)))
        return bytes(call.data.data)[2:]


class ReceiptWatcher:
    """Finds submitted extrinsics in new blocks without blocking: add() them, then poll() as
    often as convenient. With finality, a receipt is ready once its block is finalized and still
    canonical (a retracted block puts the tx back to be found again)."""

    def __init__(self, chain: Chain, *, finality: bool = False):
        self.chain = chain
        self.finality = finality
        self.pending: dict[str, PendingTx] = {}
        self.included: dict[str, Receipt] = {}
        self.scanned: int | None = None

    def add(self, tx: PendingTx) -> None:
        self.pending[tx.tx_hash] = tx
        start = tx.best_at_submit
        self.scanned = start if self.scanned is None else min(self.scanned, start)

    def __len__(self) -> int:
        return len(self.pending)

    def poll(self) -> tuple[list[Receipt], list[ChainError]]:
        """(receipts now ready, ChainError('Dropped') for txs past their mortality)."""
        if not self.pending:
            return [], []
        chain = self.chain
        best = chain.best_number()
        for number in range(self.scanned + 1, best + 1):
            block_hash = chain.block_hash(number)
            if block_hash is None:
                break
            hashes = chain.block_extrinsic_hashes(block_hash)
            hits = [(i, h) for i, h in enumerate(hashes) if h in self.pending and h not in self.included]
            if hits:
                events = chain.events(block_hash)
                for index, tx_hash in hits:
                    self.included[tx_hash] = chain._receipt(self.pending[tx_hash], block_hash, number, index, events)
            self.scanned = number
        ready: list[Receipt] = []
        if self.finality and self.included:
            finalized = chain.finalized_number()
            for tx_hash, receipt in list(self.included.items()):
                if receipt.block_number > finalized:
                    continue
                if chain.block_hash(receipt.block_number) == receipt.block_hash:
                    receipt.finalized = True
                    ready.append(receipt)
                else:
                    log.warning("block %s with %s was retracted; looking again", receipt.block_hash, tx_hash)
                    del self.included[tx_hash]
                    self.scanned = min(self.scanned, receipt.block_number - 1)
        elif not self.finality:
            ready = list(self.included.values())
        for receipt in ready:
            self.pending.pop(receipt.tx_hash, None)
            self.included.pop(receipt.tx_hash, None)
        dropped = []
        for tx_hash, tx in list(self.pending.items()):
            if tx_hash not in self.included and best > tx.mortal_until:
                chain.resync_nonce(tx.signer)
                dropped.append(ChainError("Dropped", f"{tx.call} {tx_hash} was not included by block "
                                          f"{tx.mortal_until}", tx_hash=tx_hash))
                del self.pending[tx_hash]
        return ready, dropped


def _encodable(s: SubstrateInterface, module: str, function: str, params: dict) -> dict:
    """scalecodec 1.2 sees a BoundedVec argument as a one-field tuple around the Vec: hand it
    the list wrapped that way, so callers pass plain lists."""
    fields = s.get_metadata_call_function(module, function).value["fields"]
    out = dict(params)
    for f in fields:
        type_name = f.get("typeName") or ""
        value = out.get(f["name"])
        if type_name.startswith(("BoundedVec<", "WeakBoundedVec<")) and isinstance(value, list):
            out[f["name"]] = (value,)
    return out


def _request_error_text(exc: SubstrateRequestException) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, dict):
        parts = [str(arg.get("message", "")), str(arg.get("data", "") or "")]
        code = arg.get("code")
        return f"{code}: " + " ".join(p for p in parts if p) if code is not None else " ".join(p for p in parts if p)
    return str(arg)


def units_to_brl(units: int) -> str:
    """Money units (1/1000 tick, 1 tick = R$0.01) as a BRL string with 5 decimals."""
    sign = "-" if units < 0 else ""
    units = abs(int(units))
    return f"{sign}{units // 100_000}.{units % 100_000:05d}"


UNITS_PER_TICK = 1_000
UNITS_PER_BRL = 100_000

__all__ = [
    "Balance", "Block", "CANCEL_TAG", "Chain", "ChainClearing", "ChainError", "ChainMatch", "ChainOrder",
    "ChainUnavailable", "DEFAULT_URL", "Event", "MECHANISMS", "MarketParams", "ORDER_TAG", "OrderSpec", "PALLET",
    "PendingTx", "READING_TAG", "Receipt", "ReceiptWatcher", "SIDES", "SOURCES", "SignedCancel", "SignedOrder", "UNITS_PER_BRL",
    "UNITS_PER_TICK", "cancel_message", "dev_keypair", "keypair", "order_message", "public_key",
    "reading_message", "sign_cancel", "sign_order", "ss58", "units_to_brl", "verify_cancel", "verify_order",
    "verify_sr25519",
]
