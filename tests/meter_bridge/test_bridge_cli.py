"""`python -m meter_bridge ...` as a subprocess, against a simulator that is itself a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from meter_bridge import MeterReading, spawn_simulator, start_simulator, verify_reading


def cli(env, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "meter_bridge", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


FAST = ["--timeout", "0.3", "--attempts", "2", "--backoff", "0.02"]
GENESIS_HEX = "0x" + bytes(range(32)).hex()


@pytest.fixture(scope="module")
def simulator():
    # speed 60: midday lasts, however slowly the tests run
    with spawn_simulator(
        0, "sdm630", "prosumer", speed=60, extra_args=["--start-hour", "12"]
    ) as sim:
        yield sim


def test_simulate_announces_where_it_listens(simulator):
    assert simulator.info["model"] == "sdm630" and simulator.info["simulator"] == "listening"
    assert simulator.port > 0 and simulator.process.poll() is None


def test_read_prints_one_json_reading(simulator, cli_env):
    result = cli(
        cli_env,
        "read",
        "--host",
        simulator.host,
        "--port",
        str(simulator.port),
        "--model",
        "sdm630",
        *FAST,
    )
    assert result.returncode == 0, result.stderr
    reading = json.loads(result.stdout)
    assert reading["model"] == "sdm630"
    assert isinstance(reading["import_wh"], int) and isinstance(reading["export_wh"], int)
    assert reading["power_w"] < 0 and reading["export_wh"] >= 830_000


def test_signed_reads_count_up_and_verify(simulator, cli_env, tmp_path):
    state = tmp_path / "meter1.json"
    args = [
        "read",
        "--host",
        simulator.host,
        "--port",
        str(simulator.port),
        "--model",
        "sdm630",
        "--key",
        "//Meter1",
        "--interval",
        "7",
        "--state",
        str(state),
        "--genesis-hash",
        GENESIS_HEX,
        "--epoch",
        "3",
        *FAST,
    ]
    first = cli(cli_env, *args)
    second = cli(cli_env, *args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    r1, r2 = MeterReading.from_json(first.stdout), MeterReading.from_json(second.stdout)
    assert (r1.counter, r2.counter) == (1, 2) and r1.interval == 7
    assert (r1.genesis_hash, r1.epoch) == (GENESIS_HEX, 3)
    assert verify_reading(r1) and verify_reading(r2)
    assert r2.export_wh >= r1.export_wh

    ok = cli(cli_env, "verify", stdin=second.stdout)
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"valid": True}
    tampered = json.loads(second.stdout)
    tampered["export_wh"] += 1000
    bad = cli(cli_env, "verify", stdin=json.dumps(tampered))
    assert bad.returncode == 1 and json.loads(bad.stdout) == {"valid": False}


def test_signing_without_a_state_file_is_refused(simulator, cli_env):
    result = cli(
        cli_env,
        "read",
        "--host",
        "127.0.0.1",
        "--port",
        str(simulator.port),
        "--model",
        "sdm630",
        "--key",
        "//Meter1",
        "--genesis-hash",
        GENESIS_HEX,
        "--epoch",
        "1",
        *FAST,
    )
    assert result.returncode == 2
    assert "error: signing needs --state FILE" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "binding, problem",
    [
        ([], "signing needs the meter's accreditation: --genesis-hash 0x... and --epoch N"),
        (["--epoch", "1"], "signing needs the meter's accreditation"),
        (["--genesis-hash", GENESIS_HEX], "signing needs the meter's accreditation"),
        (["--genesis-hash", "0x1234", "--epoch", "1"], "genesis hash must be 32 bytes, got 2"),
        (["--genesis-hash", "0xzz", "--epoch", "1"], "genesis hash is not hex"),
        (["--genesis-hash", GENESIS_HEX, "--epoch", "-1"], "epoch must be an integer in 0.."),
    ],
)
def test_signing_needs_the_meters_accreditation(simulator, cli_env, tmp_path, binding, problem):
    """No reading is signed (and no counter spent) without the chain and epoch it binds."""
    state = tmp_path / "meter1.json"
    result = cli(
        cli_env,
        "read",
        "--host",
        "127.0.0.1",
        "--port",
        str(simulator.port),
        "--model",
        "sdm630",
        "--key",
        "//Meter1",
        "--state",
        str(state),
        *binding,
        *FAST,
    )
    assert result.returncode == 2, result.stderr
    assert f"error: {problem}" in result.stderr
    assert result.stdout == "" and not state.exists()


def test_dead_meter_exits_stale(cli_env, closed_port):
    result = cli(
        cli_env,
        "read",
        "--host",
        "127.0.0.1",
        "--port",
        str(closed_port),
        "--model",
        "sdm120",
        *FAST,
    )
    assert result.returncode == 4
    assert f"error: meter sdm120 at 127.0.0.1:{closed_port} device 1 is stale" in result.stderr


def test_wrong_model_gives_a_clear_error(simulator, cli_env):
    result = cli(
        cli_env,
        "read",
        "--host",
        "127.0.0.1",
        "--port",
        str(simulator.port),
        "--model",
        "sunspec203",
        *FAST,
    )
    assert result.returncode == 1
    assert "no SunSpec marker 'SunS'" in result.stderr
    usage = cli(cli_env, "read", "--host", "127.0.0.1", "--model", "sdm999")
    assert usage.returncode == 2 and "invalid choice: 'sdm999'" in usage.stderr


def test_switch_and_setpoint_commands(cli_env):
    with start_simulator(
        0, "sdm120", "consumer", speed=1, start_hour=19.5, load_limit_max_w=3000
    ) as sim:
        where = ["--host", sim.host, "--port", str(sim.port), *FAST]
        off = cli(cli_env, "switch", *where, "--off")
        assert off.returncode == 0, off.stderr
        assert json.loads(off.stdout) == {"relay": False} and sim.meter.relay_on is False
        limit = cli(cli_env, "setpoint", *where, "--watts", "1500")
        assert json.loads(limit.stdout) == {"load_limit_w": 1500} and sim.meter.load_limit_w == 1500
        clamped = cli(cli_env, "setpoint", *where, "--watts", "4000")
        assert clamped.returncode == 5
        assert "wrote 4000 but the device reads back 3000" in clamped.stderr
