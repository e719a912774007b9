"""Meter readings, raw and signed, and the exact bytes the chain verifies.

Signed message (docs/chain-interface.md): b"wattchain:reading:v1" ++ meter public key[32]
++ interval u64 ++ counter u64 ++ import_wh u64 ++ export_wh u64, integers little-endian.
power_w and timestamp_ms travel with a reading but are not signed: the chain does not use them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from market import reading_message as market_reading_message

from .errors import MalformedReading
from .keys import MeterKey, verify_signature

U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


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
    interval: int
    counter: int
    import_wh: int
    export_wh: int
    power_w: int
    timestamp_ms: int
    signature: str  # 0x + hex of the 64-byte sr25519 signature

    FIELDS = (
        "meter",
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

    def message(self) -> bytes:
        return reading_message(
            self.meter_public_key, self.interval, self.counter, self.import_wh, self.export_wh
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
        _check_int("power_w", data["power_w"], I64_MIN, I64_MAX)
        _hex_bytes("meter", data["meter"], 32)
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
    meter_public_key: bytes, interval: int, counter: int, import_wh: int, export_wh: int
) -> bytes:
    """The bytes a meter signs and the chain verifies (built once, in market/messages.py)."""
    try:
        return market_reading_message(meter_public_key, interval, counter, import_wh, export_wh)
    except ValueError as exc:
        raise MalformedReading(str(exc)) from None


def sign_reading(raw: RawReading, key: MeterKey, interval: int, counter: int) -> MeterReading:
    """Sign a raw reading for `interval` with `counter` (use MeterSigner to get counters right)."""
    message = reading_message(key.public_key, interval, counter, raw.import_wh, raw.export_wh)
    return MeterReading(
        meter=key.public_key_hex,
        interval=interval,
        counter=counter,
        import_wh=raw.import_wh,
        export_wh=raw.export_wh,
        power_w=raw.power_w,
        timestamp_ms=raw.timestamp_ms,
        signature="0x" + key.sign(message).hex(),
    )


def verify_reading(reading: MeterReading | dict | str) -> bool:
    """True if the signature is the meter's over the reading's signed fields.

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
