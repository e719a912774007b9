"""Reading a meter and commanding its board, with retries, backoff and a stale state.

MeterClient keeps one link open across reads (the ingest worker polls it each interval).
A Modbus exception reply that may pass (busy, device failure, gateway) or a link fault
(timeout, no connection) is retried with exponential backoff; when every attempt fails the
client is stale and raises MeterStale until a read succeeds again. Replies that say the
request is wrong (illegal address, function or value) are not retried: they mean a wrong
--model or address, and are raised at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from market import now_ms

from .bank import Table
from .errors import (
    CommandNotConfirmed,
    ConfigurationError,
    DiscoveryError,
    LinkError,
    MeterStale,
    ModbusReplyError,
    ReadingError,
)
from .modbus import ModbusLink, SerialSettings
from .reading import RawReading
from .registers import (
    CONTROLS,
    SUNSPEC_BASES,
    SUNSPEC_END_ID,
    SUNSPEC_MARKER,
    ControlMap,
    EastronMap,
    SunSpecMap,
    meter_map,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SUNSPEC_MODELS = 64  # a chain longer than this is a broken device, not a meter


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before calling a meter stale."""

    attempts: int = 4  # tries per operation, the first included
    backoff_s: float = 0.25  # wait before the second try; doubled before each next one
    backoff_max_s: float = 5.0

    def __post_init__(self):
        if self.attempts < 1:
            raise ConfigurationError("attempts must be at least 1")
        if self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ConfigurationError("backoff must not be negative")

    def delay(self, failed_attempt: int) -> float:
        return min(self.backoff_s * 2 ** (failed_attempt - 1), self.backoff_max_s)


class MeterClient:
    """A meter (and its demand-response board) on Modbus TCP or RTU."""

    def __init__(
        self,
        model: str | EastronMap | SunSpecMap,
        host: str | None = None,
        port: int = 502,
        *,
        serial: SerialSettings | None = None,
        device_id: int = 1,
        timeout_s: float = 1.0,
        retry: RetryPolicy = RetryPolicy(),
        sunspec_base: int | None = None,
        word_order: str | None = None,
        rated_power_w: int | None = None,
        controls: ControlMap = CONTROLS,
    ):
        self.map = meter_map(model, word_order=word_order, rated_power_w=rated_power_w)
        self.link = ModbusLink(host, port, serial=serial, device_id=device_id, timeout_s=timeout_s)
        self.retry = retry
        self.controls = controls
        if sunspec_base is not None and not 0 <= sunspec_base <= 0xFFFF - 3:
            raise ConfigurationError(f"SunSpec base {sunspec_base} is outside the register space")
        self.sunspec_base = sunspec_base
        self.model_address: int | None = None  # SunSpec: where the model's ID register is
        self.stale = False
        self.failed_operations = 0  # consecutive operations that exhausted their retries
        self.last_success_ms: int | None = None

    @property
    def name(self) -> str:
        return f"{self.map.model} at {self.link.name}"

    async def close(self) -> None:
        await self.link.close()

    async def __aenter__(self) -> MeterClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- retry policy ----------------------------------------------------------------------
    async def _with_retries(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        last_error: Exception | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                result = await operation()
            except ModbusReplyError as exc:
                if exc.permanent:
                    log.error("%s: %s: %s", self.name, what, exc)
                    raise
                last_error = exc
            except LinkError as exc:
                last_error = exc
            else:
                if self.stale:
                    log.warning("%s answers again after being stale", self.name)
                self.stale = False
                self.failed_operations = 0
                self.last_success_ms = now_ms()
                return result
            if attempt < self.retry.attempts:
                delay = self.retry.delay(attempt)
                log.warning(
                    "%s: %s failed (attempt %d of %d), retrying in %.2f s: %s",
                    self.name,
                    what,
                    attempt,
                    self.retry.attempts,
                    delay,
                    last_error,
                )
                await asyncio.sleep(delay)
        self.stale = True
        self.failed_operations += 1
        error = MeterStale(self.name, self.retry.attempts, last_error)
        log.error("%s", error)
        raise error

    # -- reading ---------------------------------------------------------------------------
    async def _discover(self) -> int:
        """Address of the wanted SunSpec model's ID register, by walking the model chain."""
        assert isinstance(self.map, SunSpecMap)
        bases = (self.sunspec_base,) if self.sunspec_base is not None else SUNSPEC_BASES
        tried = []
        for base in bases:
            try:
                marker = await self.link.read_registers(Table.HOLDING_REGISTERS, base, 2)
            except ModbusReplyError as exc:
                if exc.permanent:  # nothing mapped there: try the next base
                    tried.append(f"{base} (exception {exc.code})")
                    continue
                raise
            if tuple(marker) != SUNSPEC_MARKER:
                tried.append(f"{base} (found 0x{marker[0]:04X} 0x{marker[1]:04X})")
                continue
            address = base + 2
            found = []
            for _ in range(MAX_SUNSPEC_MODELS):
                if address + 1 > 0xFFFF:
                    break
                model_id, length = await self.link.read_registers(
                    Table.HOLDING_REGISTERS, address, 2
                )
                if model_id == SUNSPEC_END_ID:
                    break
                found.append(model_id)
                if model_id == self.map.model_id:
                    if length < self.map.length:
                        raise DiscoveryError(
                            f"SunSpec model {model_id} at {address} has length {length}, "
                            f"expected at least {self.map.length}"
                        )
                    log.info(
                        "%s: SunSpec model %d at register %d (base %d)",
                        self.name,
                        model_id,
                        address,
                        base,
                    )
                    return address
                address += 2 + length
            raise DiscoveryError(
                f"SunSpec device at base {base} has no model {self.map.model_id}; "
                f"models found: {found or 'none'}"
            )
        raise DiscoveryError(f"no SunSpec marker 'SunS' in holding registers at {', '.join(tried)}")

    async def _read_once(self) -> RawReading:
        base = 0
        if self.map.needs_discovery:
            if self.model_address is None:
                self.model_address = await self._discover()
            base = self.model_address
        words: dict[int, int] = {}
        for table, address, count in self.map.requests(base):
            values = await self.link.read_registers(table, address, count)
            words.update(zip(range(address, address + count), values))
        taken_ms = now_ms()
        try:
            m = self.map.decode(words, base)
        except ReadingError:
            if self.map.needs_discovery and words.get(base) != getattr(self.map, "model_id", None):
                self.model_address = (
                    None  # the device's model chain moved: discover again next time
                )
            raise
        return RawReading(
            self.map.model,
            m.import_wh,
            m.export_wh,
            m.power_w,
            taken_ms,
            m.voltage_mv,
            m.current_ma,
        )

    async def read(self) -> RawReading:
        """Read the meter once. Raises MeterStale, ReadingError, DiscoveryError or
        ModbusReplyError."""
        try:
            return await self._with_retries("read", self._read_once)
        except ReadingError as exc:
            log.error("%s: bad reading: %s", self.name, exc)
            raise

    # -- demand response -------------------------------------------------------------------
    async def relay(self) -> bool:
        """The relay's state: True when the controlled load is switched on."""
        coil = self.controls.relay_coil
        return (
            await self._with_retries(
                "read relay", lambda: self.link.read_bits(Table.COILS, coil, 1)
            )
        )[0]

    async def switch_relay(self, on: bool) -> bool:
        """Switch the controlled load on or off; raises CommandNotConfirmed if it does not
        follow."""
        coil = self.controls.relay_coil

        async def write_and_read_back() -> bool:
            await self.link.write_coil(coil, on)
            return (await self.link.read_bits(Table.COILS, coil, 1))[0]

        state = await self._with_retries(
            f"switch relay {'on' if on else 'off'}", write_and_read_back
        )
        if state != on:
            error = CommandNotConfirmed(f"relay coil {coil} of {self.name}", on, state)
            log.error("%s", error)
            raise error
        log.info("%s: relay switched %s", self.name, "on" if on else "off")
        return state

    async def load_limit(self) -> int:
        register = self.controls.load_limit_register
        words = await self._with_retries(
            "read load limit",
            lambda: self.link.read_registers(Table.HOLDING_REGISTERS, register, 2),
        )
        return (words[0] << 16) | words[1]

    async def set_load_limit(self, watts: int) -> int:
        """Write the load's power limit in W; raises CommandNotConfirmed if the read-back
        differs."""
        if (
            isinstance(watts, bool)
            or not isinstance(watts, int)
            or not 0 <= watts <= self.controls.max_load_limit_w
        ):
            raise ConfigurationError(
                f"load limit must be an integer 0..{self.controls.max_load_limit_w} W, "
                f"not {watts!r}"
            )
        register = self.controls.load_limit_register

        async def write_and_read_back() -> int:
            await self.link.write_registers(register, [watts >> 16, watts & 0xFFFF])
            high, low = await self.link.read_registers(Table.HOLDING_REGISTERS, register, 2)
            return (high << 16) | low

        read_back = await self._with_retries(f"set load limit {watts} W", write_and_read_back)
        if read_back != watts:
            error = CommandNotConfirmed(
                f"load limit register 0x{register:04X} of {self.name}", watts, read_back
            )
            log.error("%s", error)
            raise error
        log.info("%s: load limit set to %d W", self.name, watts)
        return read_back


async def read_meter(host: str, port: int, model: str, device_id: int = 1, **options) -> RawReading:
    """Open, read once, close. For polling, keep a MeterClient instead (its stale state
    persists)."""
    async with MeterClient(model, host, port, device_id=device_id, **options) as client:
        return await client.read()
