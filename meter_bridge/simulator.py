"""A simulated site behind a meter, served over Modbus with the real register maps.

A prosumer's PV follows a bell curve over daylight with passing clouds, a household load
has morning and evening peaks; the meter integrates net power into cumulative import and
export registers. Time runs `speed` times faster than the wall clock, so a demo day passes
in minutes. The board's relay and load limit (registers.CONTROLS) act on the load.
Randomness comes from a fixed seed: the same seed gives the same weather and load.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .bank import ILLEGAL_ADDRESS, ILLEGAL_VALUE, RegisterBank, ServerReply, Table
from .errors import ConfigurationError
from .modbus import SerialSettings, ServerThread, start_bank_server
from .registers import (
    CONTROLS,
    SUNSPEC_MARKER,
    ControlMap,
    EastronMap,
    Measurement,
    SunSpecMap,
    meter_map,
    sunspec_common_model,
)

DAY_S = 86_400
SLOT_S = 300  # weather and load noise change every 5 simulated minutes
SUNRISE_H, SUNSET_H = 6.0, 18.5
SOLAR_NOON_H, SOLAR_SPREAD_H = 12.25, 2.4
MAX_STEP_S = 60  # integration step, simulated seconds


@dataclass(frozen=True)
class SiteProfile:
    """What is behind the meter."""

    kind: str  # "prosumer" (household with PV) or "consumer" (household only)
    pv_rated_w: int  # PV peak power; 0 for a consumer
    load_scale: float = 1.0  # 1.0: a household peaking near 2.5 kW in the evening
    seed: int = 1

    @classmethod
    def named(cls, kind: str, *, rated_power_w: int | None = None, seed: int = 1) -> SiteProfile:
        if kind == "prosumer":
            return cls("prosumer", rated_power_w if rated_power_w is not None else 5000, 1.0, seed)
        if kind == "consumer":
            return cls("consumer", 0, (rated_power_w or 2500) / 2500, seed)
        raise ConfigurationError(f"profile must be 'prosumer' or 'consumer', not {kind!r}")


def _bell(x: float, centre: float, spread: float) -> float:
    return math.exp(-0.5 * ((x - centre) / spread) ** 2)


def clear_sky_fraction(t_s: float) -> float:
    """Share of PV peak power under a clear sky at simulated time t_s (seconds since day 0)."""
    h = (t_s % DAY_S) / 3600
    if not SUNRISE_H < h < SUNSET_H:
        return 0.0
    # Subtract the value at sunrise so output starts and ends at zero instead of jumping.
    edge = _bell(SUNRISE_H, SOLAR_NOON_H, SOLAR_SPREAD_H)
    return max(0.0, (_bell(h, SOLAR_NOON_H, SOLAR_SPREAD_H) - edge) / (1 - edge))


class _SlotNoise:
    """Smooth seeded noise: one value per 5-minute slot, drawn day by day, interpolated."""

    def __init__(
        self, seed: int, stream: str, draw: Callable[[random.Random, float], float], start: float
    ):
        self.seed, self.stream, self.draw, self.start = seed, stream, draw, start
        self._days: dict[int, list[float]] = {}

    def _day(self, day: int) -> list[float]:
        if day not in self._days:
            rng = random.Random(f"{self.seed}:{self.stream}:{day}")
            values, x = [], self.start
            for _ in range(DAY_S // SLOT_S + 1):
                x = self.draw(rng, x)
                values.append(x)
            if len(self._days) > 4:  # a long run must not grow without bound
                self._days.clear()
            self._days[day] = values
        return self._days[day]

    def at(self, t_s: float) -> float:
        day, into = divmod(t_s, DAY_S)
        slot, frac = divmod(into / SLOT_S, 1)
        values = self._day(int(day))
        return values[int(slot)] * (1 - frac) + values[int(slot) + 1] * frac


def _cloud_step(rng: random.Random, x: float) -> float:
    # Mostly clear, with clouds that build up and pass over a few slots.
    target = 1.0 if rng.random() < 0.7 else rng.uniform(0.2, 0.8)
    return min(1.0, max(0.15, 0.6 * x + 0.4 * target + rng.gauss(0, 0.03)))


def _load_step(rng: random.Random, x: float) -> float:
    return min(1.4, max(0.7, 0.7 * x + 0.3 * rng.uniform(0.8, 1.25)))


class SiteModel:
    """PV output and household load, in W, at a simulated time."""

    def __init__(self, site: SiteProfile):
        self.site = site
        self.clouds = _SlotNoise(site.seed, "clouds", _cloud_step, 1.0)
        self.load_noise = _SlotNoise(site.seed, "load", _load_step, 1.0)

    def pv_w(self, t_s: float) -> float:
        if self.site.pv_rated_w <= 0:
            return 0.0
        return self.site.pv_rated_w * clear_sky_fraction(t_s) * self.clouds.at(t_s)

    def load_w(self, t_s: float) -> float:
        h = (t_s % DAY_S) / 3600
        base = 220  # fridge, standby, router
        morning = 900 * _bell(h, 7.25, 0.8)
        evening = 1900 * (
            _bell(h, 19.5, 1.4) + _bell(h + 24, 19.5, 1.4)
        )  # yesterday's tail after midnight
        return self.site.load_scale * (base + morning + evening) * self.load_noise.at(t_s)


class SimulatedMeter:
    """The meter's state: cumulative registers, relay and load limit, in simulated time."""

    def __init__(
        self,
        site: SiteProfile,
        *,
        speed: float = 1.0,
        start_hour: float = 6.0,
        import_wh: int = 1_250_000,
        export_wh: int | None = None,
        voltage_v: int = 230,
        load_limit_max_w: int = 0xFFFFFFFF,
        clock: Callable[[], float] = time.monotonic,
    ):
        if speed <= 0:
            raise ConfigurationError("speed must be positive")
        if not 0 <= start_hour < 24:
            raise ConfigurationError("start hour must be in 0..24")
        self.model = SiteModel(site)
        self.speed = speed
        self.clock = clock
        self._wall = clock()
        self.t_s = start_hour * 3600.0  # simulated seconds since the start of day 0
        # Milliwatt-hours, integers, so long runs do not drift.
        self.import_mwh = import_wh * 1000
        if export_wh is None:
            export_wh = 830_000 if site.pv_rated_w > 0 else 0  # a PV site has exported before
        self.export_mwh = export_wh * 1000
        self.voltage_v = voltage_v
        self.relay_on = True
        self.load_limit_max_w = load_limit_max_w
        self.load_limit_w = load_limit_max_w
        self._lock = threading.RLock()

    def net_power_w(self, t_s: float) -> float:
        load = self.model.load_w(t_s) if self.relay_on else 0.0
        load = min(load, self.load_limit_w)
        return load - self.model.pv_w(t_s)

    def advance(self) -> None:
        """Integrate net power from the last call up to now."""
        with self._lock:
            wall = self.clock()
            remaining = max(0.0, (wall - self._wall) * self.speed)
            self._wall = wall
            while remaining > 0:
                step = min(MAX_STEP_S, remaining)
                power = self.net_power_w(self.t_s + step / 2)  # midpoint rule
                energy_mwh = round(power * step / 3.6)  # W * s = J; 1 mWh = 3.6 J
                if energy_mwh > 0:
                    self.import_mwh += energy_mwh
                else:
                    self.export_mwh -= energy_mwh
                self.t_s += step
                remaining -= step

    def measurement(self) -> Measurement:
        with self._lock:
            self.advance()
            power = round(self.net_power_w(self.t_s))
            volts = self.voltage_v + 2.0 * math.sin(self.t_s / 1800)
            return Measurement(
                import_wh=self.import_mwh // 1000,
                export_wh=self.export_mwh // 1000,
                power_w=power,
                voltage_mv=round(volts * 1000),
                current_ma=round(abs(power) / volts * 1000),
            )

    def set_relay(self, on: bool) -> None:
        with self._lock:
            self.advance()  # energy up to now at the old state
            self.relay_on = on

    def set_load_limit(self, watts: int) -> int:
        with self._lock:
            self.advance()
            self.load_limit_w = min(watts, self.load_limit_max_w)  # the controller clamps
            return self.load_limit_w

    def hour(self) -> float:
        with self._lock:
            return (self.t_s % DAY_S) / 3600


def build_bank(
    meter: SimulatedMeter,
    mmap: EastronMap | SunSpecMap,
    *,
    sunspec_base: int = 40000,
    controls: ControlMap = CONTROLS,
) -> RegisterBank:
    """A bank serving `meter` with map `mmap`, refreshed on every read, taking commands."""
    bank = RegisterBank()
    if isinstance(mmap, EastronMap):
        bank.set_words(mmap.table, 0, [0] * 0x0160)  # the SDM's documented input range

        def refresh():
            for table, address, words in mmap.encode(meter.measurement()):
                bank.set_words(table, address, words)
    else:
        if sunspec_base not in (0, 40000, 50000):
            raise ConfigurationError("SunSpec base must be 0, 40000 or 50000")
        common = sunspec_common_model("WattChain", f"Simulated {mmap.model}", "SIM-0001")
        model_address = sunspec_base + 2 + len(common)
        chain = list(SUNSPEC_MARKER) + common + mmap.encode_model(meter.measurement()) + [0xFFFF, 0]
        bank.set_words(Table.HOLDING_REGISTERS, sunspec_base, chain)

        def refresh():
            bank.set_words(
                Table.HOLDING_REGISTERS, model_address, mmap.encode_model(meter.measurement())
            )

    refresh()
    bank.set_bits(Table.COILS, controls.relay_coil, [meter.relay_on])
    limit = min(meter.load_limit_w, 0xFFFFFFFF)
    bank.set_words(
        Table.HOLDING_REGISTERS, controls.load_limit_register, [limit >> 16, limit & 0xFFFF]
    )

    def before_read(table, address, count):
        refresh()

    def on_write(table, address, values):
        if table is Table.COILS and address == controls.relay_coil and len(values) == 1:
            meter.set_relay(bool(values[0]))
            return values
        if table is Table.HOLDING_REGISTERS and address == controls.load_limit_register:
            if len(values) != 2:
                raise ServerReply(ILLEGAL_VALUE)  # the 32-bit limit is written whole
            applied = meter.set_load_limit((values[0] << 16) | values[1])
            return [applied >> 16, applied & 0xFFFF]
        raise ServerReply(ILLEGAL_ADDRESS)  # meter registers are read-only

    bank.before_read = before_read
    bank.on_write = on_write
    return bank


@dataclass(frozen=True)
class SimulatorConfig:
    model: str = "sdm630"
    profile: str = "prosumer"
    speed: float = 1.0
    rated_power_w: int | None = None
    start_hour: float = 6.0
    seed: int = 1
    sunspec_base: int = 40000
    word_order: str | None = None
    load_limit_max_w: int = 0xFFFFFFFF

    def build(
        self, clock: Callable[[], float] = time.monotonic
    ) -> tuple[SimulatedMeter, RegisterBank]:
        mmap = meter_map(self.model, word_order=self.word_order)
        site = SiteProfile.named(self.profile, rated_power_w=self.rated_power_w, seed=self.seed)
        meter = SimulatedMeter(
            site,
            speed=self.speed,
            start_hour=self.start_hour,
            load_limit_max_w=self.load_limit_max_w,
            clock=clock,
        )
        return meter, build_bank(meter, mmap, sunspec_base=self.sunspec_base)


class SimulatorHandle:
    """A simulator running in this process on a background thread."""

    def __init__(
        self,
        config: SimulatorConfig,
        server: ServerThread,
        meter: SimulatedMeter,
        bank: RegisterBank,
    ):
        self.config, self.server, self.meter, self.bank = config, server, meter, bank

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def inject_faults(self, code: int, count: int = 1) -> None:
        """Answer the next `count` requests with Modbus exception `code` (e.g. 6, busy)."""
        self.bank.inject_faults(code, count)

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_simulator(
    port: int = 0,
    model: str = "sdm630",
    profile: str = "prosumer",
    speed: float = 1.0,
    *,
    host: str = "127.0.0.1",
    device_id: int = 1,
    framer: str = "socket",
    clock: Callable[[], float] = time.monotonic,
    **options,
) -> SimulatorHandle:
    """Start a simulator in this process; port 0 picks a free port (see handle.port).

    options: rated_power_w, start_hour, seed, sunspec_base, word_order, load_limit_max_w.
    """
    config = SimulatorConfig(model=model, profile=profile, speed=speed, **options)
    meter, bank = config.build(clock)
    server = ServerThread(bank, host, port, device_id=device_id, framer=framer)
    return SimulatorHandle(config, server, meter, bank)


async def run_simulator(
    config: SimulatorConfig,
    host: str,
    port: int,
    *,
    device_id: int = 1,
    framer: str = "socket",
    serial: SerialSettings | None = None,
    announce: Callable[[dict], None] | None = None,
) -> None:
    """Serve a simulator in the running event loop until cancelled (the CLI's `simulate`)."""
    meter, bank = config.build()
    server, bound = await start_bank_server(
        bank, host, port, device_id=device_id, framer=framer, serial=serial
    )
    if announce:
        announce(
            {
                "simulator": "listening",
                "host": host,
                "port": bound or port,
                "model": config.model,
                "profile": config.profile,
                "speed": config.speed,
                "device_id": device_id,
                "serial": serial.port if serial else None,
            }
        )
    try:
        await asyncio.Event().wait()
    finally:
        await server.shutdown()


class SimulatorProcess:
    """A simulator in a child process (`python -m meter_bridge simulate`), for demos and CLI
    tests."""

    def __init__(self, args: list[str], *, timeout_s: float = 15.0):
        cmd = [sys.executable, "-m", "meter_bridge", "simulate", *args]
        env = dict(os.environ)
        # The child must import this very package, wherever the caller runs from.
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        line = self._first_line(timeout_s)
        try:
            self.info = json.loads(line)
        except json.JSONDecodeError:
            why = line.strip() or self._stderr()
            self.stop()
            raise ConfigurationError(f"simulator did not start: {why}") from None
        self.host, self.port = self.info["host"], self.info["port"]

    def _first_line(self, timeout_s: float) -> str:
        box: list[str] = []
        reader = threading.Thread(
            target=lambda: box.append(self.process.stdout.readline()), daemon=True
        )
        reader.start()
        reader.join(timeout_s)
        if not box:
            self.stop()
            raise ConfigurationError(f"simulator did not announce itself within {timeout_s} s")
        return box[0]

    def _stderr(self) -> str:
        try:
            return self.process.communicate(timeout=5)[1].strip()
        except (subprocess.TimeoutExpired, ValueError):
            return "(no error output)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def spawn_simulator(
    port: int = 0,
    model: str = "sdm630",
    profile: str = "prosumer",
    speed: float = 1.0,
    *,
    host: str = "127.0.0.1",
    device_id: int = 1,
    extra_args: list[str] | None = None,
) -> SimulatorProcess:
    """Start `python -m meter_bridge simulate` and wait until it listens; port 0 picks a free
    port."""
    args = [
        "--host",
        host,
        "--port",
        str(port),
        "--model",
        model,
        "--profile",
        profile,
        "--speed",
        str(speed),
        "--device-id",
        str(device_id),
        *(extra_args or []),
    ]
    return SimulatorProcess(args)


__all__ = [
    "SiteProfile",
    "SiteModel",
    "SimulatedMeter",
    "SimulatorConfig",
    "SimulatorHandle",
    "SimulatorProcess",
    "build_bank",
    "start_simulator",
    "spawn_simulator",
    "run_simulator",
    "clear_sky_fraction",
]
