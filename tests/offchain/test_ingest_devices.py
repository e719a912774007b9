"""The meter ingest's live side, without a node: real Modbus simulators, and an Ingest whose
monitor reads them and applies a stored configuration change (what PATCH /devices/{name}
writes) without a restart: a new poll period shows in the spacing of the status timestamps, a
new port in the readings (live and signed) coming from the other simulator, and a port where
nothing answers as a stale status while the monitor lives on."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from market import MarketParams
from meter_bridge import MODELS, Accreditation, RetryPolicy, start_simulator
from offchain.ingest import Ingest, MeterSite
from store import DataDir
from store import devices as store
from wattchain.node import free_port

FAST = RetryPolicy(attempts=2, backoff_s=0.02, backoff_max_s=0.02)
ACC = Accreditation(bytes(range(32)), 1)
PARAMS = MarketParams(
    interval_ms=20_000,
    gate_closure_ms=10_000,
    min_price_ticks=1,
    max_price_ticks=10_000,
    max_quantity_wh=1_000_000,
    utility_tariff_ticks=95,
    feed_in_ticks=30,
    reading_window_ms=20_000,
    mechanism="uniform",
)


@pytest.fixture
def simulators():
    """A prosumer (it has exported: export_wh >= 830,000) and a consumer (export_wh = 0)."""
    prosumer = start_simulator(port=0, profile="prosumer", speed=60, start_hour=12.0)
    consumer = start_simulator(port=0, profile="consumer", speed=60, start_hour=12.0)
    yield prosumer, consumer
    prosumer.stop()
    consumer.stop()


def ingest_for(tmp_path, port: int, chain=None) -> Ingest:
    site = MeterSite(
        name="roof", model="sdm630", host="127.0.0.1", port=port, key_uri="//UnitMeter"
    )
    ingest = Ingest(chain, [site], tmp_path, retry=FAST, monitor_retry=FAST, check_s=0.1)
    ingest._params = PARAMS  # no node needed to read meters
    for signer in ingest.signers.values():
        signer.accreditation = ACC
    return ingest


async def until(check, timeout_s: float = 3.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s} s")
        await asyncio.sleep(0.02)


def test_a_new_period_and_a_new_port_are_applied_live(tmp_path, simulators, caplog):
    prosumer, consumer = simulators
    caplog.set_level(logging.INFO, logger="wattchain.ingest")
    ingest = ingest_for(tmp_path, prosumer.port)
    ops = DataDir(tmp_path).ops()  # what the API writes to
    status = lambda: store.device_status(ops, "roof")  # noqa: E731

    nowhere = free_port()  # nothing listens there

    def change(**values) -> int:
        return store.update_device(ops, "roof", values, by="5Operator", models=MODELS).version

    async def main():
        stop = asyncio.Event()
        monitor = asyncio.create_task(ingest.monitor(stop))
        try:
            first = await until(lambda: status().last_ok_ms and status(), what="first read")
            assert (first.state, first.applied_version) == ("connected", 1)
            assert first.export_wh >= 830_000 and first.import_wh >= 1_250_000  # the prosumer

            # Every 10 s (the default), then every second: reads come at once, 1 s apart.
            asked = time.monotonic()
            assert change(poll_period_s=1) == 2
            applied = await until(
                lambda: (s := status()).applied_version == 2 and s.last_ok_ms >= s.applied_ms and s,
                what="a first read under version 2",
            )
            assert time.monotonic() - asked < 1.0
            seen = [applied.last_ok_ms]
            deadline = time.monotonic() + 2.3
            while time.monotonic() < deadline:
                if status().last_ok_ms != seen[-1]:
                    seen.append(status().last_ok_ms)
                await asyncio.sleep(0.02)
            gaps = [b - a for a, b in zip(seen, seen[1:])]
            assert len(gaps) >= 2 and all(800 <= g <= 1_300 for g in gaps), gaps

            # Another port: the other simulator, for the live reads and the signed one.
            assert change(port=consumer.port) == 3
            moved = await until(
                lambda: status().applied_version == 3 and status().export_wh == 0 and status(),
                what="a read of the consumer",
            )
            assert moved.state == "connected" and moved.import_wh >= 1_250_000
            prosumer.stop()
            (signed,) = await ingest.poll(7)
            assert (signed.counter, signed.export_wh) == (1, 0)
            await until(lambda: status().last_ok_ms > moved.last_ok_ms, what="a later read")
            assert status().state == "connected"

            # Nothing answers there: stale, with the error; the monitor lives on.
            assert change(port=nowhere) == 4
            stale = await until(
                lambda: status().state == "stale" and status(), what="a stale status"
            )
            assert stale.applied_version == 4 and "cannot connect" in stale.last_error
            assert stale.export_wh == 0, "the last good registers stay"
            assert not monitor.done()
            assert change(port=consumer.port) == 5
            await until(lambda: status().state == "connected", what="connected again")
        finally:
            stop.set()
            await asyncio.wait_for(monitor, 2)

    asyncio.run(main())
    applied = [r.getMessage() for r in caplog.records if "applied version" in r.getMessage()]
    assert applied[1:] == [
        "device roof: applied version 2 (poll_period_s: 10 -> 1)",
        f"device roof: applied version 3 (port: {prosumer.port} -> {consumer.port})",
        f"device roof: applied version 4 (port: {consumer.port} -> {nowhere})",
        f"device roof: applied version 5 (port: {nowhere} -> {consumer.port})",
    ]
    assert applied[0].startswith("device roof: applied version 1 (sdm630 at 127.0.0.1:")


class IdleChain:
    """A node with nothing to say: what `run` reads at its start, and an empty queue to send."""

    genesis_hash = ACC.genesis_hash

    def market_params(self):
        return PARAMS

    def meter_epoch(self, meter: str) -> int:
        return ACC.epoch


def test_run_keeps_the_monitor_and_stops_it_with_the_rest(tmp_path, simulators):
    prosumer, _ = simulators
    ingest = ingest_for(tmp_path, prosumer.port, chain=IdleChain())
    ops = DataDir(tmp_path).ops()

    async def main():
        stop = asyncio.Event()
        run = asyncio.create_task(ingest.run(stop=stop))
        await until(lambda: store.device_status(ops, "roof").state == "connected")
        store.update_device(ops, "roof", {"unit_id": 2}, by="5Operator", models=MODELS)
        await until(lambda: store.device_status(ops, "roof").applied_version == 2)
        assert ingest.config["roof"].unit_id == 2
        stop.set()
        await asyncio.wait_for(run, 3)

    asyncio.run(main())
