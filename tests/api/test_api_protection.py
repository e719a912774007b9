"""No request can crash or stall the API (issue 11, "Protection" and "Server errors and schema
drift"): accounts are checked before they are decoded, bodies are limited while they arrive,
every out-of-range integer, bad cursor and malformed account gets its 4xx, every error answer
has the one documented shape (and the OpenAPI schema says so), an order the chain holds is not
merged with a different one the API logged, and one participant's open orders per interval are
capped. Against the stand-in chain view of test_api_offline.py: no node."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import sys
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from test_api_offline import BOB, CHARLIE, GENESIS, FakeChainView, body, error_of, open_interval

from api import params as api_params
from api.app import create_app
from api.client import cancel_body
from api.limits import BodyLimit
from api.models import ErrorPublic
from api.pagination import encode_cursor
from api.ratelimit import RateLimits
from market.settings import Settings
from store import DataDir, OrderLog, transaction

BIG = 2**63  # one past SQLite's largest integer
BOB_HEX = "0x" + bytes(BOB.public_key).hex()


@pytest.fixture
def app(tmp_path):
    return create_app(
        Settings(data_dir=tmp_path, order_margin_ms=4_000, max_open_orders_per_participant=3),
        chain=FakeChainView(),
    )


@pytest.fixture
def api(app):
    # A 500 raises in the test (raise_server_exceptions): every case below must answer itself.
    with TestClient(app) as client:
        yield client


def assert_error_shape(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) <= {"error", "detail", "errors"}, payload
    ErrorPublic.model_validate(payload)
    assert payload["error"] and payload["detail"]
    if error is not None:
        assert payload["error"] == error, payload
    return payload


# -- 1. accounts: length and format before any decoding -------------------------------------


def test_a_long_or_malformed_account_is_refused_before_it_is_decoded(api, monkeypatch):
    def never(value):
        raise AssertionError(f"decoded a malformed account ({len(value)} characters)")

    monkeypatch.setattr(api_params, "public_key", never)
    cases = [
        ("POST", "/orders", {"json": {**body(), "owner": "5" * 60_000}}, "owner"),
        ("POST", "/orders", {"json": {**body(), "owner": " "}}, "owner"),
        ("POST", "/orders", {"json": {**body(), "owner": BOB.ss58_address + "\n"}}, "owner"),
        ("POST", "/orders", {"json": {**body(), "owner": "0x" + "zz" * 32}}, "owner"),
        ("GET", "/participants/%20", {}, "account"),
        ("GET", "/participants/" + "5" * 5_000, {}, "account"),
        ("GET", "/participants/%20/orders", {}, "account"),
        ("GET", "/orders/%20/1", {}, "owner"),
        ("DELETE", "/orders/%20/1", {"json": cancel_body(BOB, GENESIS, 1)}, "owner"),
        ("GET", "/meters", {"params": {"owner": "0" * 200}}, "owner"),
        (
            "GET",
            "/reports/clearing-house",
            {"params": {"from_interval": 1, "to_interval": 2, "account": "a b"}},
            "account",
        ),
    ]
    for method, url, kwargs, field in cases:
        payload = assert_error_shape(api.request(method, url, **kwargs), 400, "InvalidAccount")
        assert payload["errors"][0]["field"] == field, (url, payload)
        assert len(payload["detail"]) < 200  # the input is not echoed whole


def test_a_long_owner_costs_no_time_and_well_formed_accounts_still_work(api):
    started = time.perf_counter()
    response = api.post("/orders", json={**body(), "owner": "5" * 60_000})
    assert time.perf_counter() - started < 1.0  # was seconds: base58 decoding is quadratic
    assert error_of(response) == (400, "InvalidAccount")
    # Checked, then decoded: a bad checksum is still InvalidAccount; both forms of a key work.
    assert error_of(api.get("/participants/" + "5" * 48)) == (400, "InvalidAccount")
    assert api.get(f"/participants/{BOB_HEX}").json()["account"] == BOB.ss58_address
    assert api.get(f"/participants/{BOB.ss58_address}").json()["registered"] is True
    assert api.post("/orders", json={**body(), "owner": BOB_HEX}).status_code == 202


# -- 2. the request body limit ---------------------------------------------------------------


def test_a_large_body_gets_413_in_the_error_shape(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, max_body_bytes=4_096), chain=FakeChainView())
    with TestClient(app) as api:
        big = {**body(), "padding": "x" * 5_000}
        assert_error_shape(api.post("/orders", json=big), 413, "BodyTooLarge")  # Content-Length
        chunked = api.post(  # no Content-Length: counted as it arrives
            "/orders",
            content=(b"x" * 1_000 for _ in range(10)),
            headers={"content-type": "application/json"},
        )
        assert_error_shape(chunked, 413, "BodyTooLarge")
        assert api.post("/orders", json=body()).status_code == 202  # an order fits easily
    default = Settings(data_dir=tmp_path).max_body_bytes
    assert default >= 100 * len(json.dumps(body()))


def test_the_limit_stops_reading_a_streamed_body_once_passed():
    async def endpoint(request: Request):
        await request.body()
        return {"read": True}

    inner = FastAPI()
    inner.add_api_route("/in", endpoint, methods=["POST"])
    limited = BodyLimit(inner, max_bytes=1_000)
    pulled, sent = 0, []

    async def receive():
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 100, "more_body": pulled < 10_000}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/in",
        "raw_path": b"/in",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(limited(scope, receive, send))
    assert sent[0]["status"] == 413
    assert pulled == 11  # 1 000 bytes allowed, the 11th chunk of 100 passes it: reading stops


def test_a_real_server_answers_413_without_waiting_for_the_body(tmp_path, free_port):
    port = free_port()
    app = create_app(Settings(data_dir=tmp_path), chain=FakeChainView())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.02)
        head = (
            "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 52428800\r\n\r\n"  # 50 MB announced, none sent
        )
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(head.encode())
            answer = _read_until_closed(s)
        assert answer.startswith("HTTP/1.1 413"), answer
        assert '"error":"BodyTooLarge"' in answer.replace(" ", "")

        # Chunked, no length: sent 8 KiB at a time until the server answers, which it does
        # once it has read past the limit (64 KiB by default), not at the end of the body.
        chunked_head = (
            "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (8192, b"x" * 8192)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(chunked_head.encode())
            sent = 0
            while not select.select([s], [], [], 0.02)[0]:
                assert sent < 64, "no answer after 512 KiB"
                s.sendall(chunk)
                sent += 1
            answer = _read_until_closed(s)
        assert answer.startswith("HTTP/1.1 413"), answer
        assert 8 <= sent < 64
    finally:
        server.should_exit = True
        thread.join(10)


def _read_until_closed(s: socket.socket) -> str:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data.decode()


# -- 3 and 4. out-of-range integers, bad cursors, whitespace accounts: 4xx, never 500 --------


BAD_PARAMETERS = [
    (f"/intervals/{BIG}/book", 422, "InvalidRequest"),
    (f"/intervals/{BIG}/clearing", 422, "InvalidRequest"),
    (f"/intervals/{BIG}/settlement", 422, "InvalidRequest"),
    ("/intervals/-1/clearing", 422, "InvalidRequest"),
    ("/intervals/5/book?zone=70000", 422, "InvalidRequest"),
    (f"/reports/clearing-house?from_interval={BIG}&to_interval={BIG}", 422, "InvalidRequest"),
    (f"/reports/clearing-house?from_interval=0&to_interval={BIG}", 422, "InvalidRequest"),
    (f"/participants/{BOB.ss58_address}/orders?interval={BIG}", 422, "InvalidRequest"),
    (f"/orders/{BOB.ss58_address}/{2**64}", 422, "InvalidRequest"),
    ("/clearings?cursor=W3siYSI6MX1d", 400, "BadCursor"),  # [{"a":1}]
    ("/clearings?cursor=" + encode_cursor([2**70]), 400, "BadCursor"),
    ("/clearings?cursor=" + encode_cursor([1.5]), 400, "BadCursor"),
    ("/clearings?cursor=" + encode_cursor([True]), 400, "BadCursor"),
    ("/clearings?cursor=" + encode_cursor([[1]]), 400, "BadCursor"),
    ("/clearings?cursor=" + "A" * 5_000, 400, "BadCursor"),
    ("/clearings?cursor=%C3%A9", 400, "BadCursor"),
    ("/intervals/5/book?cursor=" + encode_cursor([0, "x", {}]), 400, "BadCursor"),
    ("/meters?cursor=" + encode_cursor([7]), 400, "BadCursor"),
    ("/alerts?cursor=" + encode_cursor([-(2**64)]), 400, "BadCursor"),
    ("/participants/%20", 400, "InvalidAccount"),
    ("/participants/%09%0A/balances", 400, "InvalidAccount"),
    (f"/stream?after={2**64}", 422, "InvalidRequest"),
    (f"/stream?after={BIG}", 422, "InvalidRequest"),
    ("/stream?after=-1", 422, "InvalidRequest"),
]


def test_bad_parameters_get_their_4xx(api):
    # One app for all the cases (each was a 500, or a 200 and a cut stream, before).
    for url, status, error in BAD_PARAMETERS:
        response = api.get(url)
        assert response.status_code == status, (url, response.text)
        assert_error_shape(response, status, error)


def test_whitespace_owner_on_cancel_and_a_bad_last_event_id(api):
    assert_error_shape(
        api.request("DELETE", "/orders/%20/1", json=cancel_body(BOB, GENESIS, 1)),
        400,
        "InvalidAccount",
    )
    for value in ("9" * 19, "9" * 25, "12x", "-3", b"\xb2"):  # checked before the stream starts
        response = api.get("/stream", headers={"Last-Event-ID": value})
        assert_error_shape(response, 422, "InvalidRequest")
        assert response.json()["errors"][0]["field"] == "last-event-id"


def test_cursors_issued_still_work(api, tmp_path):
    # The stricter cursor check takes every cursor the listings issue (book: 3 integers).
    with transaction(DataDir(tmp_path).index()) as c:
        for i in range(3):
            c.execute(
                "INSERT INTO orders (order_id, owner, client_order_id, interval, side,"
                " quantity_wh, price_ticks, zone, source, renewable_only, status, placed_block)"
                " VALUES (?, ?, ?, 5, 'bid', 100, ?, 0, 'grid_mix', 0, 'open', 1)",
                (i, BOB.ss58_address, str(i), 50 + i),
            )
    first = api.get("/intervals/5/book", params={"limit": 2}).json()
    rest = api.get("/intervals/5/book", params={"limit": 2, "cursor": first["next_cursor"]})
    assert [o["order_id"] for o in first["items"] + rest.json()["items"]] == [2, 1, 0]


# -- 5. one error shape for FastAPI's and Starlette's own errors, and in the schema ----------


def test_framework_errors_have_the_documented_shape(api):
    assert_error_shape(api.get("/no/such/path"), 404, "NotFound")
    not_allowed = api.put("/orders", json={})
    assert_error_shape(not_allowed, 405, "MethodNotAllowed")
    assert "POST" in not_allowed.headers["allow"]
    # A path with a route per method lists them all (Starlette's own answer names the first).
    two_routes = api.put(f"/orders/{BOB.ss58_address}/1")
    assert_error_shape(two_routes, 405, "MethodNotAllowed")
    assert two_routes.headers["allow"] == "DELETE, GET"
    unparsable = api.post(
        "/orders", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert_error_shape(unparsable, 400, "InvalidRequest")
    broken = api.post("/orders", content=b"{", headers={"content-type": "application/json"})
    assert assert_error_shape(broken, 422, "InvalidRequest")["errors"][0]["field"] == "body"
    invalid = assert_error_shape(api.post("/orders", json={**body(), "zone": "a"}), 422)
    assert invalid["errors"][0]["field"] == "zone"
    assert_error_shape(api.get("/intervals/abc/book"), 422, "InvalidRequest")


def _documented(operation: dict, status: int) -> dict | None:
    responses = operation["responses"]
    return responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")


def test_the_schema_documents_every_error_with_the_error_model(api):
    schema = api.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/ErrorPublic"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = operation["responses"]
            assert "4XX" in codes and "5XX" in codes, (method, path)
            for code, response in codes.items():
                if code[0] in "45":
                    assert response["content"]["application/json"]["schema"] == error_ref

    account = schema["paths"]["/participants/{account}"]["get"]["parameters"][0]["schema"]
    assert account["maxLength"] == 66 and account["pattern"] == api_params.ACCOUNT_PATTERN
    owner = schema["components"]["schemas"]["OrderCreate"]["properties"]["owner"]
    assert owner["maxLength"] == 66

    # What a schema checker does: each answer's status is documented for its operation, and an
    # error's body is the documented model.
    cases = [
        ("get", "/intervals/{interval}/book", f"/intervals/{BIG}/book"),
        ("get", "/clearings", "/clearings?cursor=W3siYSI6MX1d"),
        ("get", "/participants/{account}", "/participants/%20"),
        ("post", "/orders", "/orders"),
        ("get", "/stream", f"/stream?after={2**64}"),
        ("get", "/market", "/market?x=1"),
    ]
    for method, template, url in cases:
        response = api.request(method.upper(), url, json={} if method == "post" else None)
        documented = _documented(schema["paths"][template][method], response.status_code)
        assert documented is not None, (url, response.status_code)
        if response.status_code >= 400:
            assert documented["content"]["application/json"]["schema"] == error_ref
            assert_error_shape(response, response.status_code)


# -- 6. the chain's order and a different API submission with the same id are not merged ------


def _index_order(data: DataDir, client_order_id: int, interval: int, **kw) -> None:
    row = dict(
        order_id=900 + client_order_id,
        owner=BOB.ss58_address,
        client_order_id=str(client_order_id),
        interval=interval,
        side="bid",
        quantity_wh=1_000,
        price_ticks=80,
        zone=0,
        source="grid_mix",
        renewable_only=0,
        status="open",
        placed_block=3,
    )
    row.update(kw)
    with transaction(data.index()) as c:
        c.execute(
            f"INSERT INTO orders ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )


def test_a_different_api_submission_is_not_merged_into_the_chains_order(api, tmp_path):
    k = open_interval()
    data = DataDir(tmp_path)
    # The API logs an order while the chain already holds another one with the same id (placed
    # directly, not yet in the index when the API checked).
    assert api.post("/orders", json=body(client_order_id=7, quantity_wh=1_000)).status_code == 202
    _index_order(data, 7, k, quantity_wh=5_555, price_ticks=90, side="offer", source="solar")
    got = api.get(f"/orders/{BOB.ss58_address}/7").json()
    assert (got["side"], got["quantity_wh"], got["price_ticks"]) == ("offer", 5_555, 90)
    assert got["order_id"] == 907 and got["status"] == "open"
    assert got["relay_status"] is None  # the chain's order did not come through this API
    submission = got["conflicting_submission"]
    assert (submission["side"], submission["quantity_wh"], submission["price_ticks"]) == (
        "bid",
        1_000,
        80,
    )
    assert submission["relay_status"] == "pending" and submission["log_seq"] >= 1

    # The same order in both places is one order: merged, nothing apart.
    # (In the next interval: Bob sells in this one, so he cannot buy in it.)
    assert api.post("/orders", json=body(client_order_id=8, interval=k + 1)).status_code == 202
    _index_order(data, 8, k + 1)
    same = api.get(f"/orders/{BOB.ss58_address}/8").json()
    assert same["relay_status"] == "pending" and same["status"] == "open"
    assert same["order_id"] == 908 and same["conflicting_submission"] is None


# -- 7. a cap on one participant's open orders per interval ----------------------------------


def test_one_participant_holds_at_most_n_open_orders_per_interval(api, tmp_path):
    k = open_interval()
    for i in range(3):  # the fixture's cap is 3
        assert api.post("/orders", json=body(client_order_id=i)).status_code == 202
    over = api.post("/orders", json=body(client_order_id=3))
    payload = assert_error_shape(over, 409, "TooManyOpenOrders")
    assert "3" in payload["detail"]
    assert api.post("/orders", json=body(client_order_id=0)).status_code == 202  # a replay
    assert api.post("/orders", json=body(client_order_id=4, interval=k + 1)).status_code == 202
    other = body(CHARLIE, client_order_id=3, zone=1, side="offer", source="wind")
    assert api.post("/orders", json=other).status_code == 202  # per participant

    # A cancel frees its place.
    cancelled = api.request(
        "DELETE", f"/orders/{BOB.ss58_address}/1", json=cancel_body(BOB, GENESIS, 1)
    )
    assert cancelled.status_code == 202
    assert api.post("/orders", json=body(client_order_id=5)).status_code == 202
    assert error_of(api.post("/orders", json=body(client_order_id=6))) == (
        409,
        "TooManyOpenOrders",
    )


def test_the_cap_counts_orders_on_chain_once(api, tmp_path):
    k = open_interval() + 2
    data = DataDir(tmp_path)
    log = OrderLog(data.orders())
    assert api.post("/orders", json=body(client_order_id=20, interval=k)).status_code == 202
    # Relayed and finalized: in the log as onchain at block 3 and in the index (indexed to 5).
    seq = log.order(BOB.ss58_address, 20)["seq"]
    log.mark_onchain("orders", [(seq, 920)], "0xab", 3)
    _index_order(data, 20, k)
    with transaction(data.index()) as c:
        c.execute("INSERT INTO meta (key, value) VALUES ('last_block', '5')")
    _index_order(data, 21, k)  # placed on chain directly
    assert api.post("/orders", json=body(client_order_id=22, interval=k)).status_code == 202
    assert error_of(api.post("/orders", json=body(client_order_id=23, interval=k))) == (
        409,
        "TooManyOpenOrders",
    )


def test_a_participant_over_its_rate_gets_429_and_forgeries_do_not_count(tmp_path):
    settings = Settings(data_dir=tmp_path, order_margin_ms=4_000, participant_rate_limit="3/minute")
    with TestClient(create_app(settings, chain=FakeChainView())) as api:
        k = open_interval()
        # Forged orders in Bob's name are refused for their signature and spend none of his rate.
        for i in range(5):
            forged = body(client_order_id=100 + i, interval=k)
            forged["price_ticks"] += 1
            assert error_of(api.post("/orders", json=forged)) == (400, "BadSignature")
        for i in range(2):
            assert api.post("/orders", json=body(client_order_id=i, interval=k)).status_code == 202
        cancel = cancel_body(BOB, GENESIS, 0)
        assert (
            api.request("DELETE", f"/orders/{BOB.ss58_address}/0", json=cancel).status_code == 202
        )
        over = api.post("/orders", json=body(client_order_id=9, interval=k))
        payload = assert_error_shape(over, 429, "RateLimited")
        assert "3 per 1 minute" in payload["detail"] and BOB.ss58_address in payload["detail"]
        assert 1 <= int(over.headers["retry-after"]) <= 60
        # In a batch the refused order is refused alone; Charlie has his own rate.
        batch = [body(client_order_id=10, interval=k), body(CHARLIE, client_order_id=1, zone=1)]
        results = api.post("/orders/batch", json={"orders": batch}).json()["results"]
        assert [(r["status"], r["body"].get("error")) for r in results] == [
            (429, "RateLimited"),
            (202, None),
        ]
        assert OrderLog(DataDir(tmp_path).orders()).order(BOB.ss58_address, 9) is None


def test_a_client_over_its_rate_gets_429_before_its_body_is_read(tmp_path):
    settings = Settings(data_dir=tmp_path, client_rate_limit="4/minute")
    with TestClient(create_app(settings, chain=FakeChainView())) as api:
        for _ in range(4):
            assert api.get("/market").status_code == 200
        assert_error_shape(api.get("/market"), 429, "RateLimited")
        refused = api.post("/orders", content=b"{not even json")
        assert_error_shape(refused, 429, "RateLimited")
        assert int(refused.headers["retry-after"]) >= 1


def test_a_malformed_rate_limit_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="is not a rate limit"):
        Settings(data_dir=tmp_path, participant_rate_limit="fast")
    assert Settings(data_dir=tmp_path, client_rate_limit="off").client_rate_limit is None


def test_rate_limits_count_from_many_threads_at_once():
    # The event loop counts clients while request threads count participants: the limiter's
    # storage must not see two of them at once (a 500 "threads can only be started once").
    limits = RateLimits("1000000/second", "1000000/second")
    errors: list[Exception] = []

    def count(i: int) -> None:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            try:
                limits.client_refusal(f"10.0.0.{i}")
                limits.take_order(f"owner{i}")
            except RuntimeError as exc:
                errors.append(exc)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # thread switches everywhere, so a race shows
    try:
        threads = [threading.Thread(target=count, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert errors == []
