"""Logging in to the operator console and what a session allows (api/auth.py), against a
stand-in for the chain view: a signed challenge opens a session with the chain's roles, once;
tokens cannot be forged or bent; every state-changing endpoint that is not a participant's own
signed order answers 401 without a session, and 403 to a session without the role it needs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from fastapi.testclient import TestClient
from test_api_offline import FakeChainView

from api.app import create_app
from api.auth import Session, issue_token, read_token, session_key
from market import dev_keypair, login_message, now_ms
from market.settings import Settings
from store import DataDir, alert, transaction

ALICE, BOB, EVE = dev_keypair("Alice"), dev_keypair("Bob"), dev_keypair("Eve")
GENESIS = FakeChainView.genesis_hash
# Endpoints that change state on a participant's own signature (each request carries it), and
# the two steps of logging in.
OPEN = {
    ("POST", "/orders"),
    ("POST", "/orders/batch"),
    ("DELETE", "/orders/{owner}/{client_order_id}"),
    ("POST", "/session/challenge"),
    ("POST", "/session"),
}


@pytest.fixture
def data(tmp_path) -> DataDir:
    data = DataDir(tmp_path)
    with transaction(data.index()) as c:
        c.execute("INSERT INTO roles (role, account) VALUES ('operator', ?)", (ALICE.ss58_address,))
        c.execute("INSERT INTO meta (key, value) VALUES ('genesis', ?)", ("0x" + GENESIS.hex(),))
    with transaction(data.ops()) as c:
        alert(c, "scheduler", "ClearingRejected", "interval 5: NotEquilibrium", 5)
    return data


@pytest.fixture
def api(data):
    app = create_app(Settings(data_dir=data.root), chain=FakeChainView())
    with TestClient(app) as client:
        yield client


def signed_login(api, pair, signer=None, challenge=None) -> dict:
    challenge = challenge or api.post("/session/challenge").json()["challenge"]
    message = login_message(GENESIS, bytes(pair.public_key), bytes.fromhex(challenge[2:]))
    signature = bytes((signer or pair).sign(message))
    return {
        "account": pair.ss58_address,
        "challenge": challenge,
        "signature": "0x" + signature.hex(),
    }


def error_of(r) -> tuple[int, str]:
    return r.status_code, r.json()["error"]


def auth(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


def test_a_signed_challenge_opens_a_session_with_the_chains_roles_once(api):
    login = signed_login(api, ALICE)
    s = api.post("/session", json=login).json()
    assert s["account"] == ALICE.ss58_address and s["roles"] == ["operator"]
    assert s["expires_ms"] > now_ms() + 59 * 60 * 1000
    # The same login again (here, or at another API that never issued its challenge): refused.
    assert error_of(api.post("/session", json=login)) == (401, "UnknownChallenge")
    # Bob is a registered participant (zone 0) in the fake chain.
    assert api.post("/session", json=signed_login(api, BOB)).json()["roles"] == ["participant"]


def test_bad_logins_are_refused_by_name(api, tmp_path):
    assert error_of(api.post("/session", json=signed_login(api, EVE))) == (403, "NoRole")
    forged = signed_login(api, ALICE, signer=BOB)
    assert error_of(api.post("/session", json=forged)) == (401, "BadSignature")
    # A signature over one challenge sent with another: refused.
    other = api.post("/session/challenge").json()["challenge"]
    assert error_of(
        api.post("/session", json={**signed_login(api, ALICE), "challenge": other})
    ) == (
        401,
        "BadSignature",
    )
    # A challenge this API did not make (another key), or one bent: refused.
    elsewhere = create_app(Settings(data_dir=tmp_path / "elsewhere"), chain=FakeChainView())
    with TestClient(elsewhere) as api2:
        foreign = api2.post("/session/challenge").json()["challenge"]
    for challenge in (foreign, other[:-2] + ("00" if other[-2:] != "00" else "01")):
        login = signed_login(api, ALICE, challenge=challenge)
        assert error_of(api.post("/session", json=login)) == (401, "UnknownChallenge")
    # Hex in capitals is the same challenge.
    upper = "0x" + api.post("/session/challenge").json()["challenge"][2:].upper()
    assert api.post("/session", json=signed_login(api, ALICE, challenge=upper)).status_code == 200
    assert api.post("/session", json={**signed_login(api, ALICE), "x": 1}).status_code == 422


def test_the_operator_acknowledges_an_alert_once(api):
    token = api.post("/session", json=signed_login(api, ALICE)).json()["token"]
    (first,) = api.get("/alerts").json()["items"]
    acked = api.post(f"/alerts/{first['id']}/ack", headers=auth(token)).json()
    assert acked["acked_by"] == ALICE.ss58_address and acked["acked_ms"] >= first["at_ms"]
    again = api.post(f"/alerts/{first['id']}/ack", headers=auth(token)).json()
    assert again["acked_ms"] == acked["acked_ms"]  # the first acknowledgement stays
    assert api.get("/alerts").json()["items"][0]["acked_by"] == ALICE.ss58_address
    assert error_of(api.post("/alerts/999/ack", headers=auth(token))) == (404, "UnknownAlert")


def test_a_role_the_chain_moves_ends_with_it(api, data):
    token = api.post("/session", json=signed_login(api, ALICE)).json()["token"]
    with transaction(data.index()) as c:
        c.execute("UPDATE roles SET account = ? WHERE role = 'operator'", (EVE.ss58_address,))
    assert error_of(api.post("/alerts/1/ack", headers=auth(token))) == (403, "Forbidden")


def test_tokens_cannot_be_forged_bent_or_carried_to_another_chain(api, data):
    key = session_key(data.root)
    assert len(key) == 32 and (data.root / "session.key").stat().st_mode & 0o777 == 0o600

    def signed(body: bytes) -> str:
        mac = hmac.new(key, body, hashlib.sha256).digest()
        return (
            base64.urlsafe_b64encode(body).decode() + "." + base64.urlsafe_b64encode(mac).decode()
        )

    genesis = "0x" + GENESIS.hex()
    later = now_ms() + 60_000
    bent = [
        b"not json",
        b"[]",
        json.dumps({"a": ALICE.ss58_address, "r": "operator", "e": later, "g": genesis}).encode(),
        json.dumps({"a": ALICE.ss58_address, "r": ["root"], "e": later, "g": genesis}).encode(),
        json.dumps(
            {"a": ALICE.ss58_address, "r": ["operator"], "e": str(later), "g": genesis}
        ).encode(),
        json.dumps({"a": ALICE.ss58_address, "r": ["operator"], "e": later}).encode(),
        b"\xff\xfe",
    ]
    for body in bent:
        assert read_token(data.root, signed(body)) is None, body
    for token in ("", ".", "a.b.c", "é.é", "!!!.???", signed(b"{}") + "x"):
        assert read_token(data.root, token) is None, token
        if token.isascii():  # an HTTP header cannot carry the others
            ack = api.post("/alerts/1/ack", headers=auth(token))
            assert error_of(ack) == (401, "NotAuthenticated")
    other_chain = issue_token(
        data.root, Session(ALICE.ss58_address, ("operator",), later, "0x" + "11" * 32)
    )
    assert error_of(api.post("/alerts/1/ack", headers=auth(other_chain))) == (
        401,
        "NotAuthenticated",
    )


def test_a_session_key_that_is_not_32_private_bytes_is_refused(tmp_path):
    (tmp_path / "session.key").write_bytes(b"")
    with pytest.raises(RuntimeError, match="32 bytes"):
        session_key(tmp_path)
    (tmp_path / "session.key").write_bytes(bytes(32))
    (tmp_path / "session.key").chmod(0o644)
    with pytest.raises(RuntimeError, match="owner only"):
        session_key(tmp_path)


def _state_changing(api) -> list[tuple[str, str]]:
    paths = api.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path)
        for path, ops in paths.items()
        for method in ops
        if method in ("post", "put", "patch", "delete") and (method.upper(), path) not in OPEN
    ]


def test_every_state_changing_operator_endpoint_needs_a_session_with_its_role(api, data):
    changing = _state_changing(api)
    assert {("POST", "/alerts/{alert_id}/ack"), ("PATCH", "/devices/{name}")} <= set(changing)
    genesis, later = "0x" + GENESIS.hex(), now_ms() + 60_000
    participant = issue_token(
        data.root, Session(BOB.ss58_address, ("participant",), later, genesis)
    )
    expired = issue_token(
        data.root, Session(ALICE.ss58_address, ("operator",), now_ms() - 1, genesis)
    )
    forged = participant.split(".")[0] + "." + "A" * 43
    for method, path in changing:
        url = path.replace("{alert_id}", "1").replace("{name}", "meter-1")
        for headers in ({}, auth(expired), auth(forged), {"authorization": "Basic x"}):
            r = api.request(method, url, headers=headers, json={})
            assert error_of(r) == (401, "NotAuthenticated"), (method, path, headers, r.text)
        r = api.request(method, url, headers=auth(participant), json={})
        assert error_of(r) == (403, "Forbidden"), (method, path, r.text)


def test_every_page_carries_the_content_security_policy(api):
    """The app's page, the same file under /static, and any other HTML the API answers."""
    for path in ("/", "/static/index.html"):
        r = api.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        policy = r.headers["content-security-policy"]
        assert "script-src 'self' 'wasm-unsafe-eval';" in policy
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert api.get("/docs").status_code == 404  # its page would load scripts from a CDN
