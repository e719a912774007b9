"""Errors the meter bridge raises, each naming what went wrong in the meter's terms.

Everything derives from MeterBridgeError so a caller (the CLI, the off-chain ingest worker)
can catch the family and still tell a bad register value from a meter that stopped answering.
"""

from __future__ import annotations

# Modbus exception codes (Modbus Application Protocol v1.1b3, section 7).
EXCEPTION_NAMES = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge (busy with a long command)",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}

# Codes that say the request itself is wrong: asking again gives the same answer.
PERMANENT_EXCEPTION_CODES = frozenset({0x01, 0x02, 0x03})


class MeterBridgeError(Exception):
    """Base of every error raised by meter_bridge."""


class ConfigurationError(MeterBridgeError):
    """A model name, address, key or option that cannot work."""


class LinkError(MeterBridgeError):
    """The Modbus link failed: no connection, a timeout, or a garbled reply."""


class ModbusReplyError(MeterBridgeError):
    """The meter answered with a Modbus exception reply."""

    def __init__(self, code: int, what: str):
        self.code = code
        self.what = what
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        hint = (
            "; is the meter model (register map) and device id right?"
            if code in (0x01, 0x02)
            else ""
        )
        super().__init__(f"meter answered Modbus exception {code} ({name}) to {what}{hint}")

    @property
    def permanent(self) -> bool:
        return self.code in PERMANENT_EXCEPTION_CODES


class MeterStale(MeterBridgeError):
    """The meter gave no usable answer after every retry; its data must not be trusted as
    current."""

    def __init__(self, meter: str, attempts: int, last_error: Exception):
        self.meter = meter
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            f"meter {meter} is stale: no valid answer after {attempts} attempts; "
            f"last error: {last_error}"
        )


class ReadingError(MeterBridgeError):
    """A register value that cannot be a true reading (NaN, negative, absurd, not implemented)."""

    def __init__(self, register: str, address: int | None, problem: str):
        self.register = register
        self.address = address
        self.problem = problem
        where = f" at 0x{address:04X} ({address})" if address is not None else ""
        super().__init__(f"register {register}{where}: {problem}")


class DiscoveryError(MeterBridgeError):
    """No SunSpec device, or not the wanted SunSpec model, at the probed addresses."""


class CommandNotConfirmed(MeterBridgeError):
    """A demand-response write whose read-back differs from what was written."""

    def __init__(self, command: str, wanted: object, read_back: object):
        self.command = command
        self.wanted = wanted
        self.read_back = read_back
        super().__init__(f"{command}: wrote {wanted!r} but the device reads back {read_back!r}")


class MalformedReading(MeterBridgeError):
    """A signed reading with a missing or ill-typed field (a wrong signature is not this:
    verify_reading returns False for that)."""


class StateFileError(MeterBridgeError):
    """The meter's counter state file is unreadable, belongs to another meter, or cannot be
    written."""
