"""The meter data path against a real dev node: a simulated Modbus meter, the bridge, the ingest
worker and the chain. Tokens are minted for export, bad readings are rejected on chain with
their own errors, a node restart mid-flow loses and duplicates nothing, and a signed reading
counts on one chain under one accreditation of its meter only."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from e2e_helpers import DISTRIBUTOR, RELAYER, TEST_RATED_W, accreditation, raw, submit_reading

from chain import PALLET, Chain, Receipt
from market import keypair, now_ms
from meter_bridge import Accreditation, MeterKey, resign_reading, sign_reading, start_simulator
from offchain.ingest import Ingest, MeterSite

INTERVAL_MS = 4_000
ALICE = "//Alice"


def short_intervals(chain: Chain) -> None:
    """Four-second intervals (allowed while no order exists), so a test sees several."""
    params = chain.market_params().as_chain()
    params.update(interval_ms=INTERVAL_MS, gate_closure_ms=INTERVAL_MS // 2)
    chain.submit(keypair(ALICE), "set_market_params", {"params": params})


def accredit(chain: Chain, key: MeterKey, owner: str, rated_power_w: int = TEST_RATED_W) -> Receipt:
    return chain.submit(
        keypair(DISTRIBUTOR),
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
    # The first reading is the baseline; tokens are the export since then, in Wh, minted into
    # each interval's pool (nothing here trades or settles), not to Bob.
    minted = rows[-1][1] - rows[0][1]
    assert minted > 0, "a prosumer at noon exports"
    intervals = [
        r[0] for r in ingest.queue.db.execute("SELECT interval FROM readings ORDER BY counter")
    ][1:]
    pooled = sum((chain.energy_pool(k) or {"held_wh": 0})["held_wh"] for k in set(intervals))
    assert pooled == minted
    assert chain.energy_balance(bob) == tokens_before
    assert ingest.queue.anomalies("rejected_on_chain") == []


def test_bad_readings_are_rejected_on_chain_with_their_reason(fresh_chain):
    chain = fresh_chain
    key = MeterKey.from_uri("//IngestMeter2")
    accredit(chain, key, "//Charlie")
    acc = accreditation(chain, key)
    assert acc.epoch == 1, "a first accreditation is epoch 1"
    now_interval = chain.market_params().interval_at(int(time.time() * 1000))

    def submit(reading) -> str | None:
        return submit_reading(chain, reading)

    first = sign_reading(raw(1_000, 5_000), key, acc, now_interval - 3, 1)
    assert submit(first) is None
    assert submit(first) == "ReadingReplayed"
    assert submit(sign_reading(raw(1_000, 5_100), key, acc, now_interval - 2, 3)) == "CounterGap"
    assert (
        submit(sign_reading(raw(999, 5_100), key, acc, now_interval - 2, 2)) == "RegisterBackwards"
    )
    assert (
        submit(sign_reading(raw(1_000, 5_100), key, acc, now_interval + 5, 2)) == "IntervalNotEnded"
    )
    stranger = MeterKey.from_uri("//NotAccredited")
    assert submit(sign_reading(raw(1, 1), stranger, acc, now_interval - 2, 1)) == "UnknownMeter"
    forged = sign_reading(raw(1_000, 5_100), stranger, acc, now_interval - 2, 2)
    forged = type(forged)(**{**forged.to_dict(), "meter": key.public_key_hex})
    assert submit(forged) == "BadSignature"
    # Nothing of that changed the meter's state; the honest next reading still fits.
    assert submit(sign_reading(raw(1_000, 5_100), key, acc, now_interval - 2, 2)) is None
    assert chain.energy_pool(now_interval - 2)["held_wh"] == 100


def test_an_old_signed_reading_never_counts_again_nor_on_another_chain(chain):
    """Regression (audit): `revoke_meter` then `accredit_meter` reset the meter's replay
    protection, so an old signed reading counted again; and a reading signed on one chain
    (a testnet) counted on another. A reading now binds the genesis hash and the meter's
    accreditation epoch. On the shared dev chain: its own meter, intervals long past."""
    key = MeterKey.from_uri(f"//BindingMeter/{now_ms()}")  # a meter no other test knows
    distributor = keypair(DISTRIBUTOR)
    receipt = accredit(chain, key, "//BindingOwner")
    (accredited,) = receipt.find(PALLET, "MeterAccredited")
    assert int(accredited.attributes["epoch"]) == 1
    first_acc = accreditation(chain, key)
    assert first_acc == Accreditation(chain.genesis_hash, 1)
    k = chain.market_params().interval_at(now_ms()) - 3
    old = sign_reading(raw(1_000, 5_000), key, first_acc, k, 1)
    assert submit_reading(chain, old) is None
    assert meter_on_chain(chain, key)["last"]["counter"] == 1

    chain.submit(distributor, "revoke_meter", {"meter": key.public_key_hex})
    assert chain.meter_epoch(key.public_key_hex) == 1, "a revocation keeps the epoch"
    receipt = accredit(chain, key, "//BindingOwner")
    (accredited,) = receipt.find(PALLET, "MeterAccredited")
    assert int(accredited.attributes["epoch"]) == 2
    assert chain.meter_epoch(key.public_key_hex) == 2
    assert meter_on_chain(chain, key)["last"] is None  # a new accreditation, no baseline yet

    # The same old signed reading, resubmitted: refused, and nothing counted.
    assert submit_reading(chain, old) == "StaleAccreditation"
    assert meter_on_chain(chain, key)["last"] is None
    # Signed under the current epoch but for another chain: the signature is not this chain's.
    elsewhere = Accreditation(bytes(b ^ 0xFF for b in chain.genesis_hash), 2)
    assert elsewhere.genesis_hash != chain.genesis_hash
    assert (
        submit_reading(chain, sign_reading(raw(1_000, 5_000), key, elsewhere, k, 1))
        == "BadSignature"
    )
    assert meter_on_chain(chain, key)["last"] is None
    # What the meter signs under its new accreditation counts (here, as the new baseline).
    assert submit_reading(chain, resign_reading(old, key, accreditation(chain, key))) is None
    assert meter_on_chain(chain, key)["last"]["counter"] == 1
    # Leave the shared chain without a meter a settler would wait for.
    chain.submit(distributor, "revoke_meter", {"meter": key.public_key_hex})


def test_ingest_signs_a_reading_again_after_a_re_accreditation(chain, tmp_path):
    """The distributor accredits a meter again after ingest read its epoch: the chain refuses the
    queued reading as StaleAccreditation, ingest signs it again under the new epoch with the
    same counter, and it lands on the next round. On the shared dev chain."""
    uri = f"//IngestBindingMeter/{now_ms()}"
    key = MeterKey.from_uri(uri)
    accredit(chain, key, "//BindingOwner")
    sim = start_simulator(port=0, model="sdm630", profile="prosumer", speed=60, start_hour=12.0)
    try:
        site = MeterSite(name="roof-b", model="sdm630", host=sim.host, port=sim.port, key_uri=uri)
        ingest = Ingest(chain, [site], tmp_path / "ingest", submitter_uri=RELAYER)
        ingest.refresh_accreditations()  # what run() does at start
        k = chain.market_params().interval_at(now_ms()) - 2
        (reading,) = asyncio.run(ingest.poll(k))
    finally:
        sim.stop()
    assert (reading.genesis_hash, reading.epoch) == (chain.genesis_hash_hex, 1)

    chain.submit(keypair(DISTRIBUTOR), "revoke_meter", {"meter": key.public_key_hex})
    accredit(chain, key, "//BindingOwner")
    assert ingest.submit_pending() == {"on_chain": 0, "rejected": 0, "waiting": 1}
    (anomaly,) = ingest.queue.anomalies("stale_accreditation")
    assert "StaleAccreditation" in anomaly.detail
    assert ingest.submit_pending() == {"on_chain": 1, "rejected": 0, "waiting": 0}
    last = meter_on_chain(chain, key)["last"]
    assert last["counter"] == reading.counter == 1
    assert last["export_wh"] == reading.export_wh
    assert ingest.queue.anomalies("rejected_on_chain") == []
    chain.submit(keypair(DISTRIBUTOR), "revoke_meter", {"meter": key.public_key_hex})  # tidy up


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
