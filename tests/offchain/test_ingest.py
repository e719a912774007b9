"""The ingest worker without a node: validation of readings against the queue's last one, the
anomalies it reports for a dead meter, a reset meter, a swapped meter and a missing interval,
and how it keeps readings bound to the chain and the meter's accreditation epoch (against a
stand-in for the pallet's binding rules; tests/e2e/test_meter_ingest.py has the real node)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from types import SimpleNamespace

import pytest

from chain import ChainError, ChainUnavailable
from market import reading_message, verify_sr25519
from meter_bridge import Accreditation, MeterKey, sign_reading, start_simulator
from meter_bridge.client import RetryPolicy
from meter_bridge.reading import RawReading
from offchain.ingest import Ingest, MeterSite, check_reading
from store import QueuedReading, ReadingQueue
from wattchain.node import free_port

KEY = MeterKey.from_uri("//UnitMeter")
GENESIS = bytes(range(32))
ACC = Accreditation(GENESIS, 1)


def raw(import_wh: int, export_wh: int) -> RawReading:
    return RawReading(
        model="sdm630",
        import_wh=import_wh,
        export_wh=export_wh,
        power_w=0,
        timestamp_ms=int(time.time() * 1000),
    )


def queued(counter: int, interval: int, import_wh: int, export_wh: int) -> QueuedReading:
    return QueuedReading(
        KEY.public_key_hex, counter, interval, import_wh, export_wh, "0x", "site", "pending"
    )


def kinds(problems):
    return [(kind, fatal) for kind, _, fatal in problems]


def test_a_continuing_reading_has_no_problem():
    r = sign_reading(raw(110, 220), KEY, ACC, 11, 6)
    assert (
        check_reading(r, queued(5, 10, 100, 200), rated_power_w=10_000, interval_ms=900_000) == []
    )
    assert check_reading(r, None, rated_power_w=0, interval_ms=900_000) == []


def test_each_problem_is_named():
    prev = queued(5, 10, 100, 200)
    assert kinds(check_reading(sign_reading(raw(110, 220), KEY, ACC, 11, 5), prev, 0, 1000)) == [
        ("replay", True)
    ]
    assert kinds(check_reading(sign_reading(raw(110, 220), KEY, ACC, 11, 7), prev, 0, 1000)) == [
        ("counter_gap", True)
    ]
    assert kinds(check_reading(sign_reading(raw(90, 220), KEY, ACC, 11, 6), prev, 0, 1000)) == [
        ("meter_reset", True)
    ]
    assert kinds(check_reading(sign_reading(raw(110, 220), KEY, ACC, 14, 6), prev, 0, 1000)) == [
        ("missing_interval", False)
    ]
    # 1 kW over one 15-minute interval is 250 Wh at most.
    assert kinds(
        check_reading(sign_reading(raw(100, 451), KEY, ACC, 11, 6), prev, 1_000, 900_000)
    ) == [("implausible", True)]
    forged = sign_reading(raw(110, 220), MeterKey.from_uri("//Other"), ACC, 11, 6)
    forged = type(forged)(**{**forged.to_dict(), "meter": KEY.public_key_hex})
    assert ("bad_signature", True) in kinds(check_reading(forged, prev, 0, 1000))


class _Params:
    interval_ms = 900_000


def ingest_for(tmp_path, sites, chain=None) -> Ingest:
    ingest = Ingest(
        chain=chain,
        sites=sites,
        data_dir=tmp_path,
        retry=RetryPolicy(attempts=2, backoff_s=0.01, backoff_max_s=0.02),
    )
    ingest._params = _Params()  # no node needed to read meters
    if chain is None:  # provisioned by hand, as run() does from the node
        for signer in ingest.signers.values():
            signer.accreditation = ACC
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


class BindingChain:
    """Stands in for the node in what concerns the binding of readings: `submit_reading` takes a
    reading only if its signature verifies over `reading:v2 ++ this genesis ++ MeterReading`
    (else BadSignature) and its epoch is the meter's current one (else StaleAccreditation).
    `down = True` makes every call fail as an unreachable node does."""

    def __init__(self, genesis: bytes = GENESIS, epochs: dict[str, int] | None = None):
        self.genesis_hash = genesis
        self.epochs = dict(epochs or {})
        self.accepted: list[tuple[int, int]] = []  # (counter, epoch)
        self.last: dict[str, int] = {}  # meter -> last counter taken
        self.refused: list[str] = []
        self.down = False

    @property
    def genesis_hash_hex(self) -> str:
        return "0x" + self.genesis_hash.hex()

    def _up(self) -> None:
        if self.down:
            raise ChainUnavailable("node at ws://127.0.0.1:1 unreachable")

    def meter_epoch(self, meter: str) -> int:
        self._up()
        return self.epochs.get(meter, 0)

    def query(self, pallet: str, item: str, params: list):
        self._up()
        assert (pallet, item) == ("EnergyTrading", "Meters")
        last = self.last.get(params[0])
        return {"last": None if last is None else {"counter": last}}

    def submit(self, signer, function: str, params: dict, **kwargs):
        self._up()
        assert function == "submit_reading"
        r = params["reading"]
        meter = bytes.fromhex(r["meter"][2:])
        fields = (r["epoch"], r["interval"], r["counter"], r["import_wh"], r["export_wh"])
        message = reading_message(self.genesis_hash, meter, *fields)
        if not verify_sr25519(meter, message, bytes.fromhex(params["signature"][2:])):
            self.refused.append("BadSignature")
            raise ChainError("BadSignature", pallet="EnergyTrading")
        if r["epoch"] != self.epochs.get(r["meter"], 0):
            self.refused.append("StaleAccreditation")
            raise ChainError("StaleAccreditation", pallet="EnergyTrading")
        self.accepted.append((r["counter"], r["epoch"]))
        self.last[r["meter"]] = r["counter"]
        return SimpleNamespace(block_number=len(self.accepted))


@pytest.fixture
def roof():
    sim = start_simulator(port=0, model="sdm630", profile="prosumer", speed=600, start_hour=12.0)
    yield MeterSite(
        name="roof", model="sdm630", host=sim.host, port=sim.port, key_uri="//UnitMeter"
    )
    sim.stop()


def test_readings_are_signed_for_the_chain_and_epoch_read_at_start(tmp_path, roof):
    chain = BindingChain(epochs={KEY.public_key_hex: 4})
    ingest = ingest_for(tmp_path, [roof], chain)
    ingest.refresh_accreditations()  # what run() does first
    (reading,) = asyncio.run(ingest.poll(7))
    assert (reading.genesis_hash, reading.epoch) == ("0x" + GENESIS.hex(), 4)
    (queued_reading,) = ingest.queue.pending()
    assert (queued_reading.genesis_hash, queued_reading.epoch) == (reading.genesis_hash, 4)
    assert ingest.submit_pending() == {"on_chain": 1, "rejected": 0, "waiting": 0}
    assert chain.accepted == [(1, 4)]


def test_readings_queue_while_the_node_is_down(tmp_path, roof):
    chain = BindingChain(epochs={KEY.public_key_hex: 1})
    ingest = ingest_for(tmp_path, [roof], chain)
    ingest.refresh_accreditations()
    chain.down = True
    assert [r.counter for r in asyncio.run(ingest.poll(7))] == [1]
    time.sleep(0.2)
    assert [r.counter for r in asyncio.run(ingest.poll(8))] == [2]
    with pytest.raises(ChainUnavailable):
        ingest.submit_pending()
    assert [(q.counter, q.epoch) for q in ingest.queue.pending()] == [(1, 1), (2, 1)]
    chain.down = False
    assert ingest.submit_pending()["on_chain"] == 2
    assert chain.accepted == [(1, 1), (2, 1)]


def test_a_reading_refused_as_stale_accreditation_is_signed_again_not_lost(tmp_path, roof):
    """The operator accredits the meter again after ingest read its epoch: the chain refuses
    the reading signed under the old epoch; ingest signs it again, same counter, and sends it."""
    chain = BindingChain(epochs={KEY.public_key_hex: 1})
    ingest = ingest_for(tmp_path, [roof], chain)
    ingest.refresh_accreditations()
    asyncio.run(ingest.poll(7))
    time.sleep(0.2)
    asyncio.run(ingest.poll(8))
    chain.epochs[KEY.public_key_hex] = 2  # revoked and accredited again

    first = ingest.submit_pending()
    assert first == {"on_chain": 0, "rejected": 0, "waiting": 2}, "both wait, in order"
    assert chain.refused == ["StaleAccreditation"]
    (anomaly,) = ingest.queue.anomalies("stale_accreditation")
    assert anomaly.interval == 7 and "StaleAccreditation" in anomaly.detail
    assert "epoch 1" in anomaly.detail and "epoch 2" in anomaly.detail
    # Reading 1 is signed again under epoch 2; reading 2 is once it is its turn, before it is
    # sent (the signer knows the new epoch now), so the chain refuses nothing more.
    assert ingest.submit_pending() == {"on_chain": 2, "rejected": 0, "waiting": 0}
    assert chain.accepted == [(1, 2), (2, 2)]
    assert chain.refused == ["StaleAccreditation"]
    assert len(ingest.queue.anomalies("stale_accreditation")) == 2
    # New readings are signed under the new epoch from the start.
    time.sleep(0.2)
    (third,) = asyncio.run(ingest.poll(9))
    assert (third.counter, third.epoch) == (3, 2)
    assert ingest.queue.anomalies("rejected_on_chain") == []


def test_readings_queued_under_an_epoch_the_chain_left_are_signed_again_before_sending(
    tmp_path, roof
):
    """Queued while the node was down, and the meter accredited again meanwhile: a restart
    reads the new epoch, and the readings go out signed under it without a refused one."""
    chain = BindingChain(epochs={KEY.public_key_hex: 1})
    ingest = ingest_for(tmp_path, [roof], chain)
    ingest.refresh_accreditations()
    asyncio.run(ingest.poll(7))
    ingest.queue.close()
    chain.epochs[KEY.public_key_hex] = 3

    restarted = ingest_for(tmp_path, [roof], chain)
    restarted.refresh_accreditations()
    assert restarted.submit_pending()["on_chain"] == 1
    assert chain.accepted == [(1, 3)] and chain.refused == []
    (anomaly,) = restarted.queue.anomalies("stale_accreditation")
    assert "epoch 1" in anomaly.detail and "epoch 3" in anomaly.detail


def test_a_reading_signed_for_another_chain_is_not_signed_again(tmp_path, roof):
    """The node now runs another chain: what was signed for the first one is refused there
    (BadSignature), never re-signed for it; new readings are signed for the new chain."""
    chain = BindingChain(epochs={KEY.public_key_hex: 1})
    ingest = ingest_for(tmp_path, [roof], chain)
    ingest.refresh_accreditations()
    asyncio.run(ingest.poll(7))
    chain.genesis_hash = bytes(range(1, 33))  # reconnected to a node of another chain
    assert ingest.submit_pending() == {"on_chain": 0, "rejected": 1, "waiting": 0}
    assert chain.refused == ["BadSignature"]
    assert [a.detail for a in ingest.queue.anomalies("rejected_on_chain")] == ["BadSignature"]
    assert ingest.queue.anomalies("stale_accreditation") == []
    time.sleep(0.2)
    (fresh,) = asyncio.run(ingest.poll(8))
    assert fresh.genesis_hash == chain.genesis_hash_hex


def test_an_ingest_db_from_before_the_binding_gets_its_columns(tmp_path):
    path = tmp_path / "ingest.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE readings (meter TEXT NOT NULL, counter INTEGER NOT NULL,"
        " interval INTEGER NOT NULL, import_wh INTEGER NOT NULL, export_wh INTEGER NOT NULL,"
        " signature TEXT NOT NULL, site TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',"
        " error TEXT, block INTEGER, queued_ms INTEGER NOT NULL, PRIMARY KEY (meter, counter))"
    )
    gone = MeterKey.from_uri("//UnitMeterGone").public_key_hex  # a meter no site has now
    for meter, site in ((KEY.public_key_hex, "roof"), (gone, "shed")):
        old.execute(
            "INSERT INTO readings (meter, counter, interval, import_wh, export_wh, signature,"
            " site, queued_ms) VALUES (?, 1, 7, 10, 20, '0x', ?, 0)",
            (meter, site),
        )
    old.commit()
    old.close()
    queue = ReadingQueue(path)
    assert {(q.counter, q.genesis_hash, q.epoch) for q in queue.pending()} == {(1, None, None)}
    queue.close()
    # A reading signed with the v1 message, which no chain takes now, is signed again and sent;
    # one whose key ingest no longer has cannot be, and is set aside with its reason.
    site = MeterSite(name="roof", model="sdm630", host="127.0.0.1", port=1, key_uri="//UnitMeter")
    chain = BindingChain(epochs={KEY.public_key_hex: 1})
    ingest = ingest_for(tmp_path, [site], chain)
    assert ingest.submit_pending() == {"on_chain": 1, "rejected": 1, "waiting": 0}
    assert chain.accepted == [(1, 1)] and chain.refused == []
    (anomaly,) = ingest.queue.anomalies("stale_accreditation")
    assert "unbound (v1)" in anomaly.detail
    assert [a.site for a in ingest.queue.anomalies("unbound")] == ["shed"]
