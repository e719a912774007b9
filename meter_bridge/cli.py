"""Command line: read a meter, run the simulator, send demand-response commands, verify readings.

Every command prints one JSON object on stdout; errors go to stderr as "error: ..." with a
non-zero exit status (2 bad option or configuration, 3 bad register value, 4 meter stale,
5 command not confirmed, 1 anything else, including a signature that does not verify).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from .client import MeterClient, RetryPolicy, now_ms
from .counter import MeterSigner
from .errors import (
    CommandNotConfirmed,
    ConfigurationError,
    MeterBridgeError,
    MeterStale,
    ReadingError,
)
from .keys import KEY_ENV, MeterKey
from .modbus import SerialSettings
from .reading import Accreditation, verify_reading
from .registers import MODELS
from .simulator import SimulatorConfig, run_simulator

EXIT_CODES = ((ConfigurationError, 2), (ReadingError, 3), (MeterStale, 4), (CommandNotConfirmed, 5))
DEFAULT_INTERVAL_MS = 15 * 60 * 1000


def _connection_options(p: argparse.ArgumentParser, *, model_required: bool) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="Modbus TCP host of the meter or its gateway")
    where.add_argument(
        "--serial",
        metavar="DEVICE",
        help="RTU on this serial line (e.g. /dev/ttyUSB0, or socket://host:port for RTU over TCP)",
    )
    p.add_argument("--port", type=int, default=502, help="Modbus TCP port (default 502)")
    p.add_argument("--baudrate", type=int, default=9600)
    p.add_argument("--parity", choices=["N", "E", "O"], default="N")
    p.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    p.add_argument("--bytesize", type=int, choices=[7, 8], default=8)
    p.add_argument(
        "--model",
        choices=sorted(MODELS),
        required=model_required,
        default="sdm630",
        help="register map of the meter",
    )
    p.add_argument("--device-id", type=int, default=1, help="Modbus device (unit) id, default 1")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each answer")
    p.add_argument("--attempts", type=int, default=4, help="tries before the meter is called stale")
    p.add_argument(
        "--backoff",
        type=float,
        default=0.25,
        help="first retry delay in seconds, doubled each time",
    )
    p.add_argument(
        "--sunspec-base",
        type=int,
        choices=[0, 40000, 50000],
        help="SunSpec base register (default: look at 40000, 0, 50000)",
    )
    p.add_argument("--word-order", choices=["big", "little"], help="override the map's word order")
    p.add_argument("--rated-power-w", type=int, help="rated power, for the absurd-value check")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m meter_bridge", description=__doc__.splitlines()[0]
    )
    root.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging to stderr (default WARNING)",
    )
    sub = root.add_subparsers(dest="command", required=True)

    read = sub.add_parser(
        "read",
        help="read the meter once and print the reading "
        "(signed with --key under --genesis-hash and --epoch)",
    )
    _connection_options(read, model_required=True)
    read.add_argument(
        "--key", help=f"meter secret URI, e.g. //Meter1 on a dev chain (or set {KEY_ENV})"
    )
    read.add_argument("--state", help="the meter's counter state file (needed to sign)")
    read.add_argument(
        "--genesis-hash",
        metavar="0xHEX",
        help="genesis hash of the chain the meter is accredited on (needed to sign; "
        "GET /market shows it)",
    )
    read.add_argument(
        "--epoch",
        type=int,
        help="the meter's accreditation epoch on that chain (needed to sign; 1 after its first "
        "accreditation, +1 at each later one: the chain's EnergyTrading.MeterEpochs)",
    )
    read.add_argument(
        "--interval",
        type=int,
        help="market interval the reading closes "
        "(default: the interval that ended last, from --interval-ms)",
    )
    read.add_argument(
        "--interval-ms", type=int, default=DEFAULT_INTERVAL_MS, help="market interval length"
    )
    read.add_argument(
        "--start-after",
        type=int,
        default=0,
        help="for a new state file: the last counter the chain has seen from this meter",
    )

    sim = sub.add_parser("simulate", help="serve a simulated meter over Modbus until interrupted")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    sim.add_argument(
        "--port", type=int, default=5020, help="TCP port; 0 picks a free one (printed)"
    )
    sim.add_argument(
        "--serial", metavar="DEVICE", help="serve RTU on this serial line instead of TCP"
    )
    sim.add_argument("--baudrate", type=int, default=9600)
    sim.add_argument("--model", choices=sorted(MODELS), default="sdm630")
    sim.add_argument("--device-id", type=int, default=1)
    sim.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall second (e.g. 720: a day in 2 min)",
    )
    sim.add_argument("--profile", choices=["prosumer", "consumer"], default="prosumer")
    sim.add_argument(
        "--rated-power-w",
        type=int,
        help="PV peak for a prosumer (default 5000); load scale for a consumer",
    )
    sim.add_argument("--start-hour", type=float, default=6.0, help="simulated time of day at start")
    sim.add_argument("--seed", type=int, default=1, help="seed of clouds and load noise")
    sim.add_argument("--sunspec-base", type=int, choices=[0, 40000, 50000], default=40000)
    sim.add_argument("--word-order", choices=["big", "little"])
    sim.add_argument(
        "--framer",
        choices=["socket", "rtu"],
        default="socket",
        help="socket: Modbus TCP; rtu: RTU frames over TCP (like a serial gateway)",
    )
    sim.add_argument(
        "--load-limit-max-w",
        type=int,
        default=0xFFFFFFFF,
        help="largest load limit the simulated controller accepts (it clamps above)",
    )

    switch = sub.add_parser(
        "switch", help="switch the controlled load's relay, confirmed by read-back"
    )
    _connection_options(switch, model_required=False)
    state = switch.add_mutually_exclusive_group(required=True)
    state.add_argument("--on", action="store_true")
    state.add_argument("--off", action="store_true")

    setpoint = sub.add_parser(
        "setpoint", help="write the load's power limit, confirmed by read-back"
    )
    _connection_options(setpoint, model_required=False)
    setpoint.add_argument("--watts", type=int, required=True)

    verify = sub.add_parser("verify", help="check a signed reading (JSON from a file or stdin)")
    verify.add_argument("file", nargs="?", default="-")
    return root


def _client(args) -> MeterClient:
    serial = None
    if args.serial:
        serial = SerialSettings(
            args.serial, args.baudrate, args.bytesize, args.parity, args.stopbits
        )
    return MeterClient(
        args.model,
        args.host,
        args.port,
        serial=serial,
        device_id=args.device_id,
        timeout_s=args.timeout,
        retry=RetryPolicy(attempts=args.attempts, backoff_s=args.backoff),
        sunspec_base=args.sunspec_base,
        word_order=args.word_order,
        rated_power_w=args.rated_power_w,
    )


async def _read(args) -> dict:
    signer = None
    if args.key or args.state or args.genesis_hash is not None or args.epoch is not None:
        if not args.state:
            raise ConfigurationError("signing needs --state FILE, so counters survive restarts")
        if args.genesis_hash is None or args.epoch is None:
            raise ConfigurationError(
                "signing needs the meter's accreditation: --genesis-hash 0x... and --epoch N"
            )
        accreditation = Accreditation.from_hex(args.genesis_hash, args.epoch)
        key = MeterKey.from_uri(args.key) if args.key else MeterKey.from_env()
        signer = MeterSigner(key, args.state, accreditation, start_after=args.start_after)
    if args.interval_ms <= 0:
        raise ConfigurationError("--interval-ms must be positive")
    async with _client(args) as client:
        raw = await client.read()
    if signer is None:
        return raw.to_dict()
    interval = args.interval if args.interval is not None else now_ms() // args.interval_ms - 1
    if interval < 0:
        raise ConfigurationError("--interval must not be negative")
    return signer.sign(raw, interval).to_dict()


async def _switch(args) -> dict:
    async with _client(args) as client:
        return {"relay": await client.switch_relay(bool(args.on))}


async def _setpoint(args) -> dict:
    async with _client(args) as client:
        return {"load_limit_w": await client.set_load_limit(args.watts)}


def _simulate(args) -> None:
    config = SimulatorConfig(
        model=args.model,
        profile=args.profile,
        speed=args.speed,
        rated_power_w=args.rated_power_w,
        start_hour=args.start_hour,
        seed=args.seed,
        sunspec_base=args.sunspec_base,
        word_order=args.word_order,
        load_limit_max_w=args.load_limit_max_w,
    )
    serial = SerialSettings(args.serial, args.baudrate) if args.serial else None

    def announce(info: dict) -> None:
        print(json.dumps(info), flush=True)  # a starter waits for this line

    try:
        asyncio.run(
            run_simulator(
                config,
                args.host,
                args.port,
                device_id=args.device_id,
                framer=args.framer,
                serial=serial,
                announce=announce,
            )
        )
    except KeyboardInterrupt:
        pass


def _verify(args) -> dict:
    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file).read()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {args.file}: {exc}") from exc
    return {"valid": verify_reading(text)}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if logging.getLogger().level > logging.DEBUG:
        # pymodbus repeats, less clearly, what meter_bridge already logs about each failure.
        logging.getLogger("pymodbus").setLevel(logging.ERROR)
    try:
        if args.command == "simulate":
            _simulate(args)
            return 0
        if args.command == "verify":
            result = _verify(args)
        else:
            handler = {"read": _read, "switch": _switch, "setpoint": _setpoint}[args.command]
            result = asyncio.run(handler(args))
    except MeterBridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)
    print(json.dumps(result))
    return 0 if result.get("valid", True) else 1
