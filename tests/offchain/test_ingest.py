"""The ingest worker without a node: validation of readings against the queue's last one, and
the anomalies it reports for a dead meter, a reset meter, a swapped meter and a missing interval."""

from __future__ import annotations

import asyncio
import time

from meter_bridge import MeterKey, sign_reading, start_simulator
from meter_bridge.client import RetryPolicy
from meter_bridge.reading import RawReading
from offchain.ingest import Ingest, MeterSite, check_reading
from store import QueuedReading
from wattchain.node import free_port

KEY = MeterKey.from_uri("//UnitMeter")


def raw(import_wh: int, export_wh: int) -> RawReading:
    return RawReading(
        model="sdm630",
        import_wh=import_wh,
        export_wh=export_wh,
        power_w=0,
        timestamp_ms=int(time.time() * 1000),
    )


def queued(counter: int, interval: int, import_wh: int, export_wh: int) -> QueuedReading:
    return QueuedReading(KEY.public_key_hex, counter, interval, import_wh, export_wh, "0x", "site")


def kinds(problems):
    return [(kind, fatal) for kind, _, fatal in problems]


def test_a_continuing_reading_has_no_problem():
    r = sign_reading(raw(110, 220), KEY, 11, 6)
    assert (
        check_reading(r, queued(5, 10, 100, 200), rated_power_w=10_000, interval_ms=900_000) == []
    )
    assert check_reading(r, None, rated_power_w=0, interval_ms=900_000) == []


def test_each_problem_is_named():
    prev = queued(5, 10, 100, 200)
    assert kinds(check_reading(sign_reading(raw(110, 220), KEY, 11, 5), prev, 0, 1000)) == [
        ("replay", True)
    ]
    assert kinds(check_reading(sign_reading(raw(110, 220), KEY, 11, 7), prev, 0, 1000)) == [
        ("counter_gap", True)
    ]
    assert kinds(check_reading(sign_reading(raw(90, 220), KEY, 11, 6), prev, 0, 1000)) == [
        ("meter_reset", True)
    ]
    assert kinds(check_reading(sign_reading(raw(110, 220), KEY, 14, 6), prev, 0, 1000)) == [
        ("missing_interval", False)
    ]
    # 1 kW over one 15-minute interval is 250 Wh at most.
    assert kinds(check_reading(sign_reading(raw(100, 451), KEY, 11, 6), prev, 1_000, 900_000)) == [
        ("implausible", True)
    ]
    forged = sign_reading(raw(110, 220), MeterKey.from_uri("//Other"), 11, 6)
    forged = type(forged)(**{**forged.to_dict(), "meter": KEY.public_key_hex})
    assert ("bad_signature", True) in kinds(check_reading(forged, prev, 0, 1000))


class _Params:
    interval_ms = 900_000


def ingest_for(tmp_path, sites) -> Ingest:
    ingest = Ingest(
        chain=None,
        sites=sites,
        data_dir=tmp_path,
        retry=RetryPolicy(attempts=2, backoff_s=0.01, backoff_max_s=0.02),
    )
    ingest._params = _Params()  # no node needed to read meters
    return ingest


def test_a_dead_meter_is_reported_stale_and_nothing_is_queued(tmp_path):
    site = MeterSite(
        name="dead", model="sdm630", host="127.0.0.1", port=free_port(), key_uri="//UnitMeter"
    )
    ingest = ingest_for(tmp_path, [site])
    assert asyncio.run(ingest.poll(7)) == []
    assert [a.kind for a in ingest.queue.anomalies()] == ["stale"]
    assert "dead" in ingest.stale
    assert ingest.queue.pending() == []


def test_readings_queue_once_per_interval_and_a_swap_is_reported(tmp_path):
    sim = start_simulator(port=0, model="sdm630", profile="prosumer", speed=600, start_hour=12.0)
    try:
        site = MeterSite(
            name="roof", model="sdm630", host=sim.host, port=sim.port, key_uri="//UnitMeter"
        )
        ingest = ingest_for(tmp_path, [site])
        first = asyncio.run(ingest.poll(7))
        assert [r.counter for r in first] == [1]
        assert asyncio.run(ingest.poll(7)) == [], "one reading per interval"
        time.sleep(0.3)
        second = asyncio.run(ingest.poll(9))
        assert [r.counter for r in second] == [2]
        assert [a.kind for a in ingest.queue.anomalies()] == ["missing_interval"]
        assert [(q.counter, q.interval) for q in ingest.queue.pending()] == [(1, 7), (2, 9)]

        # The site's meter is replaced: a new key at the same site.
        swapped = MeterSite(
            name="roof", model="sdm630", host=sim.host, port=sim.port, key_uri="//UnitMeter2"
        )
        again = ingest_for(tmp_path, [swapped])
        asyncio.run(again.poll(10))
        assert "meter_swap" in [a.kind for a in again.queue.anomalies()]
    finally:
        sim.stop()
