"""Meter readings, raw and signed, and the exact bytes the chain verifies.

Signed message (docs/chain-interface.md): b"wattchain:reading:v2" ++ genesis hash[32]
++ meter public key[32] ++ epoch u32 ++ interval u64 ++ counter u64 ++ import_wh u64
++ export_wh u64, integers little-endian (built once, in market/messages.py).

A meter signs under an `Accreditation`: the genesis hash of the chain it reports to and the
accreditation epoch the operator gave it (the chain's `MeterEpochs`, +1 at each accreditation).
A reading signed for another chain fails there with `BadSignature`, and one signed before the
meter's latest accreditation with `StaleAccreditation`: an old signed reading never counts twice.
power_w and timestamp_ms travel with a reading but are not signed: the chain does not use them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass

from market import U32_MAX, U64_MAX
from market import reading_message as market_reading_message

from .errors import ConfigurationError, MalformedReading
from .keys import MeterKey, verify_signature

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Accreditation:
    """What a meter's readings are bound to, provisioned when the operator accredits it: the
    genesis hash of its chain and its accreditation epoch there (1 for the first accreditation,
    +1 at each later one). Readings signed under another accreditation are refused."""

    genesis_hash: bytes  # 32 bytes
    epoch: int  # u32

    def __post_init__(self) -> None:
        if not isinstance(self.genesis_hash, bytes):
            raise ConfigurationError(f"genesis hash must be bytes, not {self.genesis_hash!r}")
        if len(self.genesis_hash) != 32:
            raise ConfigurationError(f"genesis hash must be 32 bytes, got {len(self.genesis_hash)}")
        if (
            not isinstance(self.epoch, int)
            or isinstance(self.epoch, bool)
            or not 0 <= self.epoch <= U32_MAX
        ):
            raise ConfigurationError(
                f"epoch must be an integer in 0..{U32_MAX}, not {self.epoch!r}"
            )

    @classmethod
    def from_hex(cls, genesis_hash: str, epoch: int) -> Accreditation:
        """From a 0x-hex genesis hash (as the node and `GET /market` give it)."""
        text = genesis_hash[2:] if genesis_hash.startswith("0x") else genesis_hash
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ConfigurationError(f"genesis hash is not hex: {genesis_hash!r}") from None
        return cls(raw, epoch)

    @property
    def genesis_hash_hex(self) -> str:
        return "0x" + self.genesis_hash.hex()


@dataclass(frozen=True)
class RawReading:
    """One read of a meter, not yet signed. Energy registers are cumulative, in Wh."""

    model: str
    import_wh: int
    export_wh: int
    power_w: int  # net: positive importing from the grid, negative exporting
    timestamp_ms: int  # unix milliseconds when the read completed
    voltage_mv: int | None = None
    current_ma: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MeterReading:
    """A reading signed with the meter's key, as the off-chain worker submits it."""

    meter: str  # 0x + hex of the 32-byte sr25519 public key
    genesis_hash: str  # 0x + hex of the 32-byte genesis hash of the chain it is signed for
    epoch: int  # the meter's accreditation epoch it is signed under (u32)
    interval: int
    counter: int
    import_wh: int
    export_wh: int
    power_w: int
    timestamp_ms: int
    signature: str  # 0x + hex of the 64-byte sr25519 signature

    FIELDS = (
        "meter",
        "genesis_hash",
        "epoch",
        "interval",
        "counter",
        "import_wh",
        "export_wh",
        "power_w",
        "timestamp_ms",
        "signature",
    )

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def meter_public_key(self) -> bytes:
        return _hex_bytes("meter", self.meter, 32)

    @property
    def accreditation(self) -> Accreditation:
        """The chain and accreditation epoch this reading is signed for."""
        try:
            return Accreditation(_hex_bytes("genesis_hash", self.genesis_hash, 32), self.epoch)
        except ConfigurationError as exc:
            raise MalformedReading(str(exc)) from None

    def message(self) -> bytes:
        return reading_message(
            _hex_bytes("genesis_hash", self.genesis_hash, 32),
            self.meter_public_key,
            self.epoch,
            self.interval,
            self.counter,
            self.import_wh,
            self.export_wh,
        )

    @classmethod
    def from_dict(cls, data: dict) -> MeterReading:
        """Checks every field's presence, type and range; raises MalformedReading naming the
        field."""
        if not isinstance(data, dict):
            raise MalformedReading(f"a reading must be a JSON object, not {type(data).__name__}")
        missing = [f for f in cls.FIELDS if f not in data]
        if missing:
            raise MalformedReading(f"reading lacks field(s): {', '.join(missing)}")
        for name in ("interval", "counter", "import_wh", "export_wh", "timestamp_ms"):
            _check_int(name, data[name], 0, U64_MAX)
        _check_int("epoch", data["epoch"], 0, U32_MAX)
        _check_int("power_w", data["power_w"], I64_MIN, I64_MAX)
        _hex_bytes("meter", data["meter"], 32)
        _hex_bytes("genesis_hash", data["genesis_hash"], 32)
        _hex_bytes("signature", data["signature"], 64)
        return cls(**{f: data[f] for f in cls.FIELDS})

    @classmethod
    def from_json(cls, text: str) -> MeterReading:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MalformedReading(f"reading is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _check_int(name: str, value, low: int, high: int) -> None:
    # bool is an int in Python; a reading field never is one.
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedReading(f"field {name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise MalformedReading(f"field {name} = {value} is outside {low}..{high}")


def _hex_bytes(name: str, value, length: int) -> bytes:
    if not isinstance(value, str):
        raise MalformedReading(f"field {name} must be a hex string, not {value!r}")
    text = value[2:] if value.startswith("0x") else value
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise MalformedReading(f"field {name} is not hex: {value!r}") from None
    if len(data) != length:
        raise MalformedReading(f"field {name} must be {length} bytes, got {len(data)}")
    return data


def reading_message(
    genesis_hash: bytes,
    meter_public_key: bytes,
    epoch: int,
    interval: int,
    counter: int,
    import_wh: int,
    export_wh: int,
) -> bytes:
    """The bytes a meter signs and the chain verifies (built once, in market/messages.py)."""
    try:
        return market_reading_message(
            genesis_hash, meter_public_key, epoch, interval, counter, import_wh, export_wh
        )
    except ValueError as exc:
        raise MalformedReading(str(exc)) from None


def sign_reading(
    raw: RawReading, key: MeterKey, accreditation: Accreditation, interval: int, counter: int
) -> MeterReading:
    """Sign a raw reading for `interval` with `counter` under the meter's `accreditation` (use
    MeterSigner to get counters right)."""
    message = reading_message(
        accreditation.genesis_hash,
        key.public_key,
        accreditation.epoch,
        interval,
        counter,
        raw.import_wh,
        raw.export_wh,
    )
    return MeterReading(
        meter=key.public_key_hex,
        genesis_hash=accreditation.genesis_hash_hex,
        epoch=accreditation.epoch,
        interval=interval,
        counter=counter,
        import_wh=raw.import_wh,
        export_wh=raw.export_wh,
        power_w=raw.power_w,
        timestamp_ms=raw.timestamp_ms,
        signature="0x" + key.sign(message).hex(),
    )


def resign_reading(
    reading: MeterReading, key: MeterKey, accreditation: Accreditation
) -> MeterReading:
    """The same reading (interval, counter, registers) signed again under another accreditation.

    Only for a reading the chain never accepted, e.g. one it refused with `StaleAccreditation`
    because the meter was accredited again after it was signed: the counter is not spent."""
    if reading.meter != key.public_key_hex:
        raise ConfigurationError(
            f"a reading of meter {reading.meter} cannot be signed "
            f"with the key of {key.public_key_hex}"
        )
    message = reading_message(
        accreditation.genesis_hash,
        key.public_key,
        accreditation.epoch,
        reading.interval,
        reading.counter,
        reading.import_wh,
        reading.export_wh,
    )
    return dataclasses.replace(
        reading,
        genesis_hash=accreditation.genesis_hash_hex,
        epoch=accreditation.epoch,
        signature="0x" + key.sign(message).hex(),
    )


def verify_reading(reading: MeterReading | dict | str) -> bool:
    """True if the signature is the meter's over the reading's signed fields, for the chain
    (genesis hash) and accreditation epoch the reading names. Whether those are the chain's and
    the meter's current ones is for the chain to judge.

    Accepts a MeterReading, its dict, or its JSON. A malformed reading raises
    MalformedReading (it is a bug or an attack, not just a bad signature).
    """
    if isinstance(reading, str):
        reading = MeterReading.from_json(reading)
    elif isinstance(reading, dict):
        reading = MeterReading.from_dict(reading)
    else:
        reading = MeterReading.from_dict(reading.to_dict())
    return verify_signature(
        reading.meter_public_key, reading.message(), _hex_bytes("signature", reading.signature, 64)
    )
