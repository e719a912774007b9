"""The meter data path against a real dev node: a simulated Modbus meter, the bridge, the ingest
worker and the chain. Tokens are minted for export, bad readings are rejected on chain with
their own errors, and a node restart mid-flow loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from chain import Chain, ChainError
from market import keypair
from meter_bridge import MeterKey, sign_reading, start_simulator
from meter_bridge.reading import RawReading
from offchain.ingest import Ingest, MeterSite

INTERVAL_MS = 4_000
ALICE = "//Alice"


def short_intervals(chain: Chain) -> None:
    """Four-second intervals (allowed while no order exists), so a test sees several."""
    params = chain.market_params().as_dict()
    params.update(interval_ms=INTERVAL_MS, gate_closure_ms=INTERVAL_MS // 2)
    chain.submit(keypair(ALICE), "set_market_params", {"params": params})


def accredit(chain: Chain, key: MeterKey, owner: str, rated_power_w: int = 0) -> None:
    chain.submit(
        keypair(ALICE),
        "accredit_meter",
        {
            "meter": key.public_key_hex,
            "owner": keypair(owner).ss58_address,
            "zone": 0,
            "source": "Solar",
            "rated_power_w": rated_power_w,
        },
    )


def meter_on_chain(chain: Chain, key: MeterKey) -> dict:
    return chain.query("EnergyTrading", "Meters", [key.public_key_hex])


@pytest.fixture
def fresh_chain(start_node):
    node = start_node()
    chain = Chain(node.url).connect()
    short_intervals(chain)
    yield chain
    chain.close()
    node.stop()  # each test has its own chain; don't let them pile up


def test_simulated_meter_mints_tokens_for_export(fresh_chain, tmp_path):
    chain = fresh_chain
    key = MeterKey.from_uri("//IngestMeter1")
    accredit(chain, key, "//Bob")
    sim = start_simulator(port=0, model="sdm630", profile="prosumer", speed=900, start_hour=11.0)
    try:
        site = MeterSite(
            name="roof-1", model="sdm630", host=sim.host, port=sim.port, key_uri="//IngestMeter1"
        )
        ingest = Ingest(chain, [site], tmp_path / "ingest")
        bob = keypair("//Bob").ss58_address
        tokens_before = chain.energy_balance(bob)
        asyncio.run(ingest.run(intervals=3))
    finally:
        sim.stop()

    rows = ingest.queue.db.execute(
        "SELECT counter, export_wh, status FROM readings ORDER BY counter"
    ).fetchall()
    assert [r[2] for r in rows] == ["on_chain"] * 3, rows
    assert [r[0] for r in rows] == [1, 2, 3]
    last = meter_on_chain(chain, key)["last"]
    assert last["counter"] == 3 and last["export_wh"] == rows[-1][1]
    # The first reading is the baseline; tokens are the export since then, in Wh.
    minted = rows[-1][1] - rows[0][1]
    assert minted > 0, "a prosumer at noon exports"
    assert chain.energy_balance(bob) - tokens_before == minted
    assert ingest.queue.anomalies("rejected_on_chain") == []


def test_bad_readings_are_rejected_on_chain_with_their_reason(fresh_chain):
    chain = fresh_chain
    key = MeterKey.from_uri("//IngestMeter2")
    accredit(chain, key, "//Charlie")
    relayer = keypair("//Bob//stash")
    now_interval = chain.market_params().interval_at(int(time.time() * 1000))

    def raw(import_wh, export_wh):
        return RawReading(
            model="sdm630",
            import_wh=import_wh,
            export_wh=export_wh,
            power_w=0,
            timestamp_ms=int(time.time() * 1000),
        )

    def submit(reading) -> str | None:
        params = Chain.reading_params(
            reading.meter,
            reading.interval,
            reading.counter,
            reading.import_wh,
            reading.export_wh,
            reading.signature,
        )
        try:
            chain.submit(relayer, "submit_reading", params)
        except ChainError as exc:
            return exc.name
        return None

    first = sign_reading(raw(1_000, 5_000), key, now_interval - 3, 1)
    assert submit(first) is None
    assert submit(first) == "ReadingReplayed"
    assert submit(sign_reading(raw(1_000, 5_100), key, now_interval - 2, 3)) == "CounterGap"
    assert submit(sign_reading(raw(999, 5_100), key, now_interval - 2, 2)) == "RegisterBackwards"
    assert submit(sign_reading(raw(1_000, 5_100), key, now_interval + 5, 2)) == "IntervalNotEnded"
    stranger = MeterKey.from_uri("//NotAccredited")
    assert submit(sign_reading(raw(1, 1), stranger, now_interval - 2, 1)) == "UnknownMeter"
    forged = sign_reading(raw(1_000, 5_100), stranger, now_interval - 2, 2)
    forged = type(forged)(**{**forged.to_dict(), "meter": key.public_key_hex})
    assert submit(forged) == "BadSignature"
    # Nothing of that changed the meter's state; the honest next reading still fits.
    assert submit(sign_reading(raw(1_000, 5_100), key, now_interval - 2, 2)) is None
    assert chain.energy_balance(keypair("//Charlie").ss58_address) >= 100


def test_node_restart_mid_flow_loses_and_duplicates_nothing(start_node, tmp_path):
    node = start_node(base_path=tmp_path / "chain")
    chain = Chain(node.url).connect()
    short_intervals(chain)
    key = MeterKey.from_uri("//IngestMeter3")
    accredit(chain, key, "//Dave")
    sim = start_simulator(port=0, model="sdm120", profile="prosumer", speed=900, start_hour=10.0)
    site = MeterSite(
        name="roof-3", model="sdm120", host=sim.host, port=sim.port, key_uri="//IngestMeter3"
    )
    ingest = Ingest(chain, [site], tmp_path / "ingest")
    errors: list[BaseException] = []

    def run():
        try:
            asyncio.run(ingest.run(intervals=6))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and ingest.queue.counts().get("on_chain", 0) < 1:
            time.sleep(0.5)
        assert ingest.queue.counts().get("on_chain", 0) >= 1, (
            "the first reading never reached the chain"
        )
        node.stop()
        time.sleep(2.5 * INTERVAL_MS / 1000)  # readings keep coming and queue up
        assert ingest.queue.counts().get("pending", 0) >= 1, (
            "readings should wait while the node is down"
        )
        node.start()
        worker.join(timeout=120)
        assert not worker.is_alive(), "ingest did not finish"
    finally:
        sim.stop()
        node.stop()
    assert errors == []
    node.start()
    chain = Chain(node.url).connect()
    rows = ingest.queue.db.execute(
        "SELECT counter, status FROM readings ORDER BY counter"
    ).fetchall()
    counters = [r[0] for r in rows]
    assert counters == list(range(1, len(rows) + 1)) and len(rows) == 6
    assert {r[1] for r in rows} == {"on_chain"}, rows
    # The pallet only takes counter + 1, so the chain's last counter equal to ours means every
    # reading landed once, in order.
    assert meter_on_chain(chain, key)["last"]["counter"] == counters[-1]
    chain.close()
