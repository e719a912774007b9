"""The device configuration in ops.db (store/devices.py): seeding from the sites file (once per
name; only the meter key follows the file afterwards), checked partial changes that bump the
version and leave one audit row per changed field, the no-op change, and the live status."""

from __future__ import annotations

import pytest

from store import DataDir, DeviceSeed, InvalidDeviceChange, UnknownDevice
from store import devices as store

MODELS = ("sdm120", "sdm230", "sdm630", "sunspec203", "sunspec701")
METER_A = "0x" + "aa" * 32
METER_B = "0x" + "bb" * 32


def seed(name="roof", **kw) -> DeviceSeed:
    values = dict(
        model="sdm630",
        host="10.0.0.5",
        port=502,
        unit_id=1,
        meter=METER_A,
        rated_power_w=7_500,
    )
    values.update(kw)
    return DeviceSeed(name=name, **values)


@pytest.fixture
def ops(tmp_path):
    conn = DataDir(tmp_path).ops()
    store.seed_devices(conn, [seed()], models=MODELS)
    return conn


def changes(ops, name="roof"):
    return [(c.by, c.field, c.old, c.new) for c in store.device_changes(ops, name, limit=100)]


def test_seeding_stores_new_names_with_defaults_and_audits_them(ops):
    d = store.device(ops, "roof")
    assert d is not None
    assert (d.model, d.host, d.port, d.unit_id, d.meter, d.rated_power_w) == (
        "sdm630",
        "10.0.0.5",
        502,
        1,
        METER_A,
        7_500,
    )
    assert (d.poll_period_s, d.curtail_limit_w, d.revert_timer_s) == (10, None, 0)
    assert (d.version, d.updated_by) == (1, "sites file")
    seeded = changes(ops)
    assert {field for _, field, _, _ in seeded} == {
        "model",
        "host",
        "port",
        "unit_id",
        "meter",
        "rated_power_w",
        "poll_period_s",
        "curtail_limit_w",
        "revert_timer_s",
    }
    assert all(by == "sites file" and old is None for by, _, old, _ in seeded)
    assert ("sites file", "port", None, 502) in seeded
    assert store.device_status(ops, "roof").state == "unknown"


def test_after_seeding_the_store_decides_and_the_sites_file_gives_only_the_key(ops):
    store.update_device(ops, "roof", {"port": 1502}, by="5Operator", models=MODELS)
    touched = store.seed_devices(
        ops,
        [seed(host="10.9.9.9", port=5020, model="sdm120"), seed("shed", unit_id=3)],
        models=MODELS,
    )
    assert touched == ["shed"]
    roof = store.device(ops, "roof")
    assert roof is not None
    assert (roof.host, roof.port, roof.model, roof.version) == ("10.0.0.5", 1502, "sdm630", 2)
    shed = store.device(ops, "shed")
    assert shed is not None and shed.unit_id == 3
    # A swapped meter: the new key is taken, as a new version, audited as the sites file's.
    assert store.seed_devices(ops, [seed(meter=METER_B)], models=MODELS) == ["roof"]
    roof = store.device(ops, "roof")
    assert roof is not None and (roof.meter, roof.version) == (METER_B, 3)
    assert changes(ops)[0] == ("sites file", "meter", METER_A, METER_B)
    assert [d.name for d in store.devices(ops)] == ["roof", "shed"]


@pytest.mark.parametrize(
    "bad, field",
    [
        (dict(name="roof top"), "name"),
        (dict(name="x" * 65), "name"),
        (dict(model="sdm999"), "model"),
        (dict(host="10.0.0.5 "), "host"),
        (dict(port=0), "port"),
        (dict(unit_id=0), "unit_id"),
        (dict(meter="//Alice"), "meter"),  # a key URI is never stored
    ],
)
def test_a_bad_seed_is_refused_before_anything_is_written(tmp_path, bad, field):
    conn = DataDir(tmp_path).ops()
    with pytest.raises(InvalidDeviceChange) as refused:
        store.seed_devices(conn, [seed("good"), seed(**bad)], models=MODELS)
    assert refused.value.field == field
    assert store.devices(conn) == [] and changes(conn, "good") == []


def test_a_change_bumps_the_version_and_audits_each_changed_field(ops):
    d = store.update_device(
        ops,
        "roof",
        {"host": "meter-7.site.local", "port": 502, "curtail_limit_w": 3_000, "model": "SDM120"},
        by="5Distributor",
        models=MODELS,
    )
    assert (d.host, d.port, d.curtail_limit_w, d.model) == (
        "meter-7.site.local",
        502,
        3_000,
        "sdm120",
    )
    assert (d.version, d.updated_by) == (2, "5Distributor")
    latest = changes(ops)[:3]
    # port was given at its current value: no row for it.
    assert sorted(latest) == [
        ("5Distributor", "curtail_limit_w", None, 3_000),
        ("5Distributor", "host", "10.0.0.5", "meter-7.site.local"),
        ("5Distributor", "model", "sdm630", "sdm120"),
    ]
    assert len(changes(ops)) == 9 + 3
    first, second = store.device_changes(ops, "roof", limit=2)
    assert first.id > second.id, "newest first"
    assert [c.id for c in store.device_changes(ops, "roof", before=second.id, limit=100)] == [
        c.id for c in store.device_changes(ops, "roof", limit=100)[2:]
    ]
    # null removes the curtailment again.
    d = store.update_device(ops, "roof", {"curtail_limit_w": None}, by="5Op", models=MODELS)
    assert (d.curtail_limit_w, d.version) == (None, 3)
    assert changes(ops)[0] == ("5Op", "curtail_limit_w", 3_000, None)


def test_a_change_to_the_current_values_is_a_no_op(ops):
    before = store.device(ops, "roof")
    same = store.update_device(
        ops, "roof", {"port": 502, "host": "10.0.0.5", "model": "sdm630"}, by="5Op", models=MODELS
    )
    assert same == before
    assert store.update_device(ops, "roof", {}, by="5Op", models=MODELS) == before
    assert len(changes(ops)) == 9  # the seeding's only


@pytest.mark.parametrize(
    "change, field",
    [
        ({"colour": "red"}, "colour"),
        ({"meter": METER_B}, "meter"),  # the sites file's, not a change's
        ({"rated_power_w": 1}, "rated_power_w"),
        ({"model": "sdm999"}, "model"),
        ({"model": 630}, "model"),
        ({"host": ""}, "host"),
        ({"host": "a b"}, "host"),
        ({"host": "a" * 254}, "host"),
        ({"host": "-bad.example"}, "host"),
        ({"host": "a" * 64 + ".net"}, "host"),
        ({"host": "example.org."}, "host"),
        ({"host": "999.1.1.1"}, "host"),
        ({"host": None}, "host"),
        ({"port": 0}, "port"),
        ({"port": 65_536}, "port"),
        ({"port": "502"}, "port"),
        ({"port": True}, "port"),
        ({"port": 502.0}, "port"),
        ({"port": None}, "port"),
        ({"unit_id": 0}, "unit_id"),
        ({"unit_id": 248}, "unit_id"),
        ({"poll_period_s": 0}, "poll_period_s"),
        ({"poll_period_s": 3_601}, "poll_period_s"),
        ({"curtail_limit_w": -1}, "curtail_limit_w"),
        ({"curtail_limit_w": 7_501}, "curtail_limit_w"),  # above the rated 7,500 W
        ({"revert_timer_s": -1}, "revert_timer_s"),
        ({"revert_timer_s": 86_401}, "revert_timer_s"),
        ({"port": 503, "unit_id": 300}, "unit_id"),  # all or nothing
    ],
)
def test_a_bad_change_is_refused_naming_its_field_and_changes_nothing(ops, change, field):
    before = store.device(ops, "roof")
    with pytest.raises(InvalidDeviceChange) as refused:
        store.update_device(ops, "roof", change, by="5Op", models=MODELS)
    assert refused.value.field == field
    assert store.device(ops, "roof") == before
    assert len(changes(ops)) == 9


def test_limits_at_their_bounds_and_hosts_that_are_accepted(ops):
    accepted = ("127.0.0.1", "::1", "fe80::1", "meter-1", "m.example.org", "meter_sim")
    for host in (*accepted, "a" * 63 + ".net"):
        assert (
            store.update_device(ops, "roof", {"host": host}, by="5Op", models=MODELS).host == host
        )
    edge = {
        "port": 65_535,
        "unit_id": 247,
        "poll_period_s": 3_600,
        "curtail_limit_w": 7_500,
        "revert_timer_s": 86_400,
    }
    d = store.update_device(ops, "roof", edge, by="5Op", models=MODELS)
    assert {k: getattr(d, k) for k in edge} == edge
    # Without a known rating the board's uint32 register is the bound.
    store.seed_devices(ops, [seed("shed", rated_power_w=0)], models=MODELS)
    big = store.update_device(ops, "shed", {"curtail_limit_w": 2**32 - 1}, by="5Op", models=MODELS)
    assert big.curtail_limit_w == 2**32 - 1
    with pytest.raises(InvalidDeviceChange):
        store.update_device(ops, "shed", {"curtail_limit_w": 2**32}, by="5Op", models=MODELS)


def test_an_unknown_device(ops):
    with pytest.raises(UnknownDevice):
        store.update_device(ops, "nowhere", {"port": 503}, by="5Op", models=MODELS)
    assert store.device(ops, "nowhere") is None
    assert store.device_status(ops, "nowhere").state == "unknown"


def test_status_keeps_the_last_good_read_while_stale(ops):
    store.record_applied(ops, "roof", 1, at_ms=900)
    store.record_status(
        ops, "roof", state="connected", at_ms=1_000, import_wh=10, export_wh=20, power_w=-300
    )
    store.record_status(ops, "roof", state="stale", at_ms=2_000, error="cannot connect")
    s = store.device_status(ops, "roof")
    assert (s.state, s.last_error, s.last_ok_ms, s.checked_ms) == (
        "stale",
        "cannot connect",
        1_000,
        2_000,
    )
    assert (s.import_wh, s.export_wh, s.power_w) == (10, 20, -300)
    assert (s.applied_version, s.applied_ms) == (1, 900)
    store.record_status(
        ops, "roof", state="connected", at_ms=3_000, import_wh=11, export_wh=20, power_w=5
    )
    s = store.device_status(ops, "roof")
    assert (s.state, s.last_error, s.last_ok_ms, s.import_wh) == ("connected", None, 3_000, 11)
    with pytest.raises(ValueError):
        store.record_status(ops, "roof", state="online", at_ms=4_000)  # type: ignore[arg-type]
