"""Logging in to the operator console and what a session allows (api/auth.py), against a
stand-in for the chain view: a signed login opens a session with the chain's roles; every
state-changing endpoint that is not a participant's own signed order answers 401 without a
session, and 403 to a session without the role it needs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from test_api_offline import FakeChainView

from api.app import create_app
from api.auth import Session, issue_token
from market import dev_keypair, login_message, now_ms
from market.settings import Settings
from store import DataDir, alert, transaction

ALICE, BOB, EVE = dev_keypair("Alice"), dev_keypair("Bob"), dev_keypair("Eve")
GENESIS = FakeChainView.genesis_hash
# Endpoints that change state on a participant's own signature (each request carries it).
SIGNED_BY_PARTICIPANTS = {
    ("POST", "/orders"),
    ("POST", "/orders/batch"),
    ("DELETE", "/orders/{owner}/{client_order_id}"),
    ("POST", "/session"),
}


@pytest.fixture
def api(tmp_path):
    data = DataDir(tmp_path)
    with transaction(data.index()) as c:
        c.execute("INSERT INTO roles (role, account) VALUES ('operator', ?)", (ALICE.ss58_address,))
    with transaction(data.ops()) as c:
        alert(c, "scheduler", "ClearingRejected", "interval 5: NotEquilibrium", 5)
    app = create_app(Settings(data_dir=tmp_path), chain=FakeChainView())
    with TestClient(app) as client:
        client.data_root = data.root
        yield client


def signed_login(pair, issued_ms=None) -> dict:
    issued = now_ms() if issued_ms is None else issued_ms
    signature = pair.sign(login_message(GENESIS, bytes(pair.public_key), issued))
    return {
        "account": pair.ss58_address,
        "issued_ms": issued,
        "signature": "0x" + bytes(signature).hex(),
    }


def error_of(r) -> tuple[int, str]:
    return r.status_code, r.json()["error"]


def test_a_signed_login_opens_a_session_with_the_chains_roles(api):
    s = api.post("/session", json=signed_login(ALICE)).json()
    assert s["account"] == ALICE.ss58_address and s["roles"] == ["operator"]
    assert s["expires_ms"] > now_ms() + 59 * 60 * 1000
    # Bob is a registered participant (zone 0) in the fake chain.
    assert api.post("/session", json=signed_login(BOB)).json()["roles"] == ["participant"]


def test_bad_logins_are_refused_by_name(api):
    assert error_of(api.post("/session", json=signed_login(EVE))) == (403, "NoRole")
    stale = signed_login(ALICE, now_ms() - 5 * 60 * 1000)
    assert error_of(api.post("/session", json=stale)) == (401, "LoginExpired")
    forged = {**signed_login(BOB), "account": ALICE.ss58_address}
    assert error_of(api.post("/session", json=forged)) == (401, "BadSignature")
    assert error_of(api.post("/session", json={**signed_login(ALICE), "x": 1}))[0] == 422


def test_the_operator_acknowledges_an_alert_once(api):
    token = api.post("/session", json=signed_login(ALICE)).json()["token"]
    (first,) = api.get("/alerts").json()["items"]
    auth = {"authorization": f"Bearer {token}"}
    acked = api.post(f"/alerts/{first['id']}/ack", headers=auth).json()
    assert acked["acked_by"] == ALICE.ss58_address and acked["acked_ms"] >= first["at_ms"]
    again = api.post(f"/alerts/{first['id']}/ack", headers=auth).json()
    assert again["acked_ms"] == acked["acked_ms"]  # the first acknowledgement stays
    assert api.get("/alerts").json()["items"][0]["acked_by"] == ALICE.ss58_address
    assert error_of(api.post("/alerts/999/ack", headers=auth)) == (404, "UnknownAlert")


def _state_changing(api) -> list[tuple[str, str]]:
    paths = api.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path)
        for path, ops in paths.items()
        for method in ops
        if method in ("post", "put", "patch", "delete")
        and (method.upper(), path) not in SIGNED_BY_PARTICIPANTS
    ]


def test_every_state_changing_operator_endpoint_needs_a_session_with_its_role(api):
    changing = _state_changing(api)
    assert ("POST", "/alerts/{alert_id}/ack") in changing
    participant = issue_token(
        api.data_root, Session(BOB.ss58_address, ("participant",), now_ms() + 60_000)
    )
    expired = issue_token(api.data_root, Session(ALICE.ss58_address, ("operator",), now_ms() - 1))
    forged = participant.split(".")[0] + "." + "A" * 43
    for method, path in changing:
        url = path.replace("{alert_id}", "1").replace("{name}", "meter-1")
        for headers in (
            {},
            {"authorization": "Bearer " + expired},
            {"authorization": "Bearer " + forged},
            {"authorization": "Basic x"},
        ):
            r = api.request(method, url, headers=headers, json={})
            assert error_of(r) == (401, "NotAuthenticated"), (method, path, headers, r.text)
        r = api.request(method, url, headers={"authorization": "Bearer " + participant}, json={})
        assert error_of(r) == (403, "Forbidden"), (method, path, r.text)
