"""The device configuration endpoints (api/routes/devices.py) against a stand-in for the chain
view (no node): a session of the operator or the distributor on every one of them (401 without
a valid token, 403 for a participant), 422 InvalidRequest naming each bad field, 404 for an
unknown device, and a change recorded with the session's account."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import Session, issue_token
from market import dev_keypair
from market.settings import Settings
from store import DataDir, DeviceSeed, transaction
from store import devices as store

OPERATOR = dev_keypair("Alice").ss58_address
DISTRIBUTOR = dev_keypair("Ferdie").ss58_address
PARTICIPANT = dev_keypair("Bob").ss58_address
MODELS = ("sdm120", "sdm230", "sdm630", "sunspec203", "sunspec701")
ROOF = DeviceSeed("roof", "sdm630", "10.0.0.5", 502, 1, "0x" + "aa" * 32, rated_power_w=7_500)
SHED = DeviceSeed("shed", "sunspec203", "10.0.0.6", 1502, 3, "0x" + "bb" * 32)
ENDPOINTS = [
    ("GET", "/devices", None),
    ("GET", "/devices/roof", None),
    ("PATCH", "/devices/roof", {"port": 503}),
    ("GET", "/devices/roof/changes", None),
]


class FakeChainView:
    """What sessions read of the chain: its genesis hash and who is a registered participant
    (Bob); the operator's and the distributor's roles come from the index."""

    node_reachable = True
    genesis_hash = bytes(32)

    def zone_of(self, account):
        return 0 if account == PARTICIPANT else None

    def close(self):
        pass


@pytest.fixture
def data(tmp_path) -> DataDir:
    data = DataDir(tmp_path)
    store.seed_devices(data.ops(), [ROOF, SHED], models=MODELS)
    with transaction(data.index()) as c:
        c.executemany(
            "INSERT INTO roles (role, account) VALUES (?, ?)",
            [("operator", OPERATOR), ("distributor", DISTRIBUTOR)],
        )
        c.execute("INSERT INTO meta (key, value) VALUES ('genesis', ?)", ("0x" + "00" * 32,))
    return data


@pytest.fixture
def api(data):
    app = create_app(Settings(data_dir=data.root), chain=FakeChainView())
    with TestClient(app) as client:
        yield client


def token(data: DataDir, account: str, *roles: str, ttl_ms: int = 3_600_000) -> dict:
    session = Session(account, roles, int(time.time() * 1000) + ttl_ms, "0x" + "00" * 32)
    return {"Authorization": f"Bearer {issue_token(data.root, session)}"}


def call(api, method, path, body=None, headers=None):
    return api.request(method, path, json=body, headers=headers or {})


def test_every_devices_endpoint_needs_an_operator_or_distributor_session(api, data, tmp_path):
    forged = token(DataDir(tmp_path / "elsewhere"), OPERATOR, "operator")  # another key
    expired = token(data, OPERATOR, "operator", ttl_ms=-1_000)
    mac = token(data, PARTICIPANT, "participant")["Authorization"].split(".")[1]
    elevated = token(data, OPERATOR, "operator")["Authorization"].split(".")[0]
    spliced = {"Authorization": f"{elevated}.{mac}"}  # the operator's claims, another's MAC
    for method, path, payload in ENDPOINTS:
        for headers in (
            None,
            forged,
            expired,
            spliced,
            {"Authorization": "Bearer "},
            {"Authorization": "Basic b3BlcmF0b3I6cGFzcw=="},
            {"Authorization": token(data, OPERATOR, "operator")["Authorization"][7:]},
        ):
            answer = call(api, method, path, payload, headers)
            assert (answer.status_code, answer.json()["error"]) == (401, "NotAuthenticated"), (
                method,
                path,
                headers,
            )
        participant = call(api, method, path, payload, token(data, PARTICIPANT, "participant"))
        assert (participant.status_code, participant.json()["error"]) == (403, "Forbidden")
    # Even a malformed name is refused as unauthenticated first.
    assert call(api, "GET", "/devices/bad%20name").status_code == 401
    roof = store.device(data.ops(), "roof")
    assert roof is not None and (roof.port, roof.version) == (502, 1), "nothing was changed"
    listed = api.get("/devices", headers=token(data, DISTRIBUTOR, "distributor"))
    assert [d["name"] for d in listed.json()["items"]] == ["roof", "shed"], "a distributor may"


def test_devices_with_their_config_register_map_and_status(api, data):
    auth = token(data, OPERATOR, "operator")
    store.record_applied(data.ops(), "roof", 1, at_ms=1_000)
    store.record_status(
        data.ops(), "roof", state="connected", at_ms=2_000, import_wh=5, export_wh=7, power_w=-40
    )
    page = api.get("/devices", headers=auth).json()
    assert [d["name"] for d in page["items"]] == ["roof", "shed"] and page["next_cursor"] is None
    roof, shed = page["items"]
    assert (roof["model"], roof["host"], roof["port"], roof["unit_id"]) == (
        "sdm630",
        "10.0.0.5",
        502,
        1,
    )
    assert (roof["poll_period_s"], roof["curtail_limit_w"], roof["revert_timer_s"]) == (10, None, 0)
    assert (roof["meter"], roof["rated_power_w"], roof["updated_by"]) == (
        "0x" + "aa" * 32,
        7_500,
        "sites file",
    )
    assert "key_uri" not in roof
    assert roof["status"] == {
        "state": "connected",
        "last_ok_ms": 2_000,
        "last_error": None,
        "import_wh": 5,
        "export_wh": 7,
        "power_w": -40,
        "checked_ms": 2_000,
        "applied_version": 1,
        "applied_ms": 1_000,
        "applied": True,
    }
    points = {p["quantity"]: p for p in roof["register_map"]["points"]}
    assert points["import"]["address"] == 0x0048 and points["import"]["table"] == "input registers"
    assert points["power"]["address"] == 0x0034
    assert shed["register_map"]["sunspec_model_id"] == 203
    assert {p["point"] for p in shed["register_map"]["points"]} >= {"TotWhImp", "TotWhExp", "W"}
    assert shed["rated_power_w"] is None and shed["status"]["state"] == "unknown"
    assert shed["status"]["applied"] is False

    first = api.get("/devices?limit=1", headers=auth).json()
    assert [d["name"] for d in first["items"]] == ["roof"] and first["next_cursor"]
    second = api.get(f"/devices?limit=1&cursor={first['next_cursor']}", headers=auth).json()
    assert [d["name"] for d in second["items"]] == ["shed"] and second["next_cursor"] is None
    assert api.get("/devices/shed", headers=auth).json() == shed


def test_a_change_is_applied_to_the_store_and_recorded_with_the_sessions_account(api, data):
    auth = token(data, DISTRIBUTOR, "distributor")
    answer = api.patch(
        "/devices/roof",
        json={"host": "meter-7.local", "port": 1502, "curtail_limit_w": 3_000},
        headers=auth,
    )
    assert answer.status_code == 200, answer.text
    roof = answer.json()
    assert (roof["host"], roof["port"], roof["curtail_limit_w"]) == ("meter-7.local", 1502, 3_000)
    assert (roof["version"], roof["updated_by"], roof["unit_id"]) == (2, DISTRIBUTOR, 1)
    assert roof["status"]["applied"] is False  # until the ingest takes it in
    stored = store.device(data.ops(), "roof")
    assert stored is not None and (stored.host, stored.port, stored.version) == (
        "meter-7.local",
        1502,
        2,
    )

    changes = api.get("/devices/roof/changes?limit=3", headers=auth).json()
    assert [(c["by"], c["field"], c["old"], c["new"]) for c in changes["items"]] == [
        (DISTRIBUTOR, "curtail_limit_w", None, 3_000),
        (DISTRIBUTOR, "port", 502, 1502),
        (DISTRIBUTOR, "host", "10.0.0.5", "meter-7.local"),
    ]
    assert len({c["at_ms"] for c in changes["items"]}) == 1, "one change, one time"
    rest = api.get(f"/devices/roof/changes?cursor={changes['next_cursor']}", headers=auth).json()
    assert {c["by"] for c in rest["items"]} == {"sites file"} and len(rest["items"]) == 9

    # The same values again: nothing new, no audit row. null lifts the curtailment.
    again = api.patch("/devices/roof", json={"port": 1502}, headers=auth).json()
    assert again["version"] == 2
    lifted = api.patch(
        "/devices/roof", json={"curtail_limit_w": None}, headers=token(data, OPERATOR, "operator")
    ).json()
    assert (lifted["curtail_limit_w"], lifted["version"], lifted["updated_by"]) == (
        None,
        3,
        OPERATOR,
    )
    newest = api.get("/devices/roof/changes?limit=1", headers=auth).json()["items"]
    assert [(c["by"], c["field"], c["old"], c["new"]) for c in newest] == [
        (OPERATOR, "curtail_limit_w", 3_000, None)
    ]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"colour": "red"}, "colour"),
        ({"meter": "0x" + "cc" * 32}, "meter"),
        ({"model": "sdm999"}, "model"),
        ({"model": 630}, "model"),
        ({"host": "a b"}, "host"),
        ({"host": ""}, "host"),
        ({"host": "a" * 254}, "host"),
        ({"host": "bad_host!"}, "host"),
        ({"host": None}, "host"),
        ({"port": 0}, "port"),
        ({"port": 65_536}, "port"),
        ({"port": "502"}, "port"),
        ({"port": 502.5}, "port"),
        ({"port": True}, "port"),
        ({"port": None}, "port"),
        ({"unit_id": 0}, "unit_id"),
        ({"unit_id": 248}, "unit_id"),
        ({"poll_period_s": 0}, "poll_period_s"),
        ({"poll_period_s": 3_601}, "poll_period_s"),
        ({"curtail_limit_w": -1}, "curtail_limit_w"),
        ({"curtail_limit_w": 7_501}, "curtail_limit_w"),  # above the rated 7,500 W
        ({"revert_timer_s": -1}, "revert_timer_s"),
        ({"revert_timer_s": 86_401}, "revert_timer_s"),
    ],
)
def test_a_bad_field_is_422_naming_it_and_changes_nothing(api, data, body, field):
    answer = api.patch("/devices/roof", json=body, headers=token(data, DISTRIBUTOR, "distributor"))
    assert answer.status_code == 422, answer.text
    refusal = answer.json()
    assert refusal["error"] == "InvalidRequest"
    assert [e["field"] for e in refusal["errors"]] == [field]
    assert field in refusal["detail"]
    roof = store.device(data.ops(), "roof")
    assert roof is not None and roof.version == 1


def test_unknown_and_malformed_device_names(api, data):
    auth = token(data, DISTRIBUTOR, "distributor")
    for method, path, payload in (
        ("GET", "/devices/nowhere", None),
        ("PATCH", "/devices/nowhere", {"port": 503}),
        ("GET", "/devices/nowhere/changes", None),
    ):
        answer = call(api, method, path, payload, auth)
        assert (answer.status_code, answer.json()["error"]) == (404, "UnknownDevice")
    for name in ("bad%20name", "x" * 65, "-roof", "roof%0A"):
        answer = api.get(f"/devices/{name}", headers=auth)
        assert answer.status_code == 422, name
        assert [e["field"] for e in answer.json()["errors"]] == ["name"]
    assert store.device(data.ops(), "nowhere") is None


def test_where_a_meter_is_read_is_the_distributors_and_each_move_raises_an_alert(api, data):
    """The address and the model decide what the ingest signs with the meter's key: the
    operator may tune the polling and demand response, not move the meter's source."""
    operator = token(data, OPERATOR, "operator")
    for body in ({"host": "10.0.0.9"}, {"port": 1502}, {"unit_id": 2}, {"model": "sdm120"}):
        answer = api.patch("/devices/roof", json={"poll_period_s": 5, **body}, headers=operator)
        assert (answer.status_code, answer.json()["error"]) == (403, "Forbidden"), body
    assert store.device(data.ops(), "roof").version == 1  # nothing of a refused change applies
    assert (
        api.patch("/devices/roof", json={"poll_period_s": 5}, headers=operator).status_code == 200
    )
    assert api.get("/alerts").json()["items"] == []  # tuning raises no alert

    moved = api.patch(
        "/devices/roof", json={"host": "10.0.0.9"}, headers=token(data, DISTRIBUTOR, "distributor")
    )
    assert moved.status_code == 200 and moved.json()["host"] == "10.0.0.9"
    (raised,) = api.get("/alerts").json()["items"]
    assert raised["name"] == "MeterSourceChanged"
    assert "host changed by" in raised["detail"] and DISTRIBUTOR in raised["detail"]
    assert "10.0.0.9" not in raised["detail"]  # alerts are public; addresses are not
