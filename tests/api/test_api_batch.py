"""POST /orders/batch (issue 11, "Batch entry"): each order gets what POST /orders would answer
for it alone, a bad order refuses only itself, the accepted ones are logged once and with one
commit, a resend is idempotent, and a batch over max_batch_orders is refused whole. Against the
stand-in chain view of test_api_offline.py: no node."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_api_offline import (
    BOB,
    CHARLIE,
    DAVE,
    PARAMS,
    FakeChainView,
    body,
    error_of,
    open_interval,
)

import store.db
from api.app import create_app
from api.client import Client, OrderRefused
from api.limits import ORDER_MAX_BYTES, batch_body_bytes
from market.settings import Settings
from store import DataDir


@pytest.fixture
def commits(monkeypatch):
    """The COMMITs on the order log (orders.db), on every connection the API opens: with
    synchronous=FULL, one fsync each."""
    seen: list[str] = []
    connect = store.db.connect

    def traced(path, schema, **kw):
        conn = connect(path, schema, **kw)
        if Path(path).name == "orders.db":
            conn.set_trace_callback(lambda sql: seen.append(sql.strip().upper()))
        return conn

    monkeypatch.setattr(store.db, "connect", traced)
    return lambda: seen.count("COMMIT")


@pytest.fixture
def api(tmp_path, commits):
    settings = Settings(
        data_dir=tmp_path,
        order_margin_ms=4_000,
        max_batch_orders=12,
        max_open_orders_per_participant=None,
    )
    with TestClient(create_app(settings, chain=FakeChainView())) as client:
        yield client


def batch(api, orders):
    response = api.post("/orders/batch", json={"orders": orders})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(orders)
    return [(r["status"], r["body"]) for r in results]


def logged(tmp_path) -> list[tuple[str, int]]:
    rows = DataDir(tmp_path).orders().execute("SELECT owner, client_order_id FROM orders")
    return sorted((r["owner"], int(r["client_order_id"])) for r in rows)


def test_each_order_gets_its_own_answer_and_the_good_ones_are_logged_once(api, tmp_path, commits):
    assert api.post("/orders", json=body(client_order_id=9)).status_code == 202  # logged before
    bad_signature = body(client_order_id=2)
    bad_signature["signature"] = "0x" + "00" * 64
    now_interval = PARAMS.interval_at(time.time_ns() // 1_000_000)
    orders = [
        body(client_order_id=1),
        bad_signature,
        body(client_order_id=3, interval=now_interval),  # its gate has closed
        body(client_order_id=9, quantity_wh=999),  # id taken in the log, other content
        body(client_order_id=1, price_ticks=81),  # id taken earlier in this batch
        body(client_order_id=1),  # the same order again in the batch: the same answer
        {**body(client_order_id=5), "quantity_wh": 1.5},  # malformed: refuses only itself
        "not an order",
        {**body(client_order_id=6), "owner": " "},
        body(CHARLIE, client_order_id=1, zone=1, price_ticks=60),  # 60 000 of 100 000 units
        body(CHARLIE, client_order_id=2, zone=1, price_ticks=60),  # counts the bid before it
        body(client_order_id=4, side="offer", source="solar"),  # Bob buys in this interval
    ]
    before = commits()
    results = batch(api, orders)
    assert commits() - before == 1  # one commit (one fsync) for the whole batch

    statuses = [(status, b.get("error")) for status, b in results]
    assert statuses == [
        (202, None),
        (400, "BadSignature"),
        (422, "GateClosed"),
        (409, "ClientOrderIdReused"),
        (409, "ClientOrderIdReused"),
        (202, None),
        (422, "InvalidRequest"),
        (422, "InvalidRequest"),
        (400, "InvalidAccount"),
        (202, None),
        (422, "InsufficientBalance"),
        (409, "SelfTrade"),
    ]
    assert results[5][1] == results[0][1]  # the first answer again
    assert results[6][1]["errors"][0]["field"] == "quantity_wh"
    assert results[8][1]["errors"][0]["field"] == "owner"
    accepted = results[0][1]
    assert accepted["status"] == "accepted" and accepted["owner"] == BOB.ss58_address
    assert accepted["order_ref"] == f"{BOB.ss58_address}/1" and accepted["log_seq"] >= 2
    for status, answer in results:
        assert answer["detail" if status >= 400 else "received_ms"]
    assert logged(tmp_path) == sorted(
        [(BOB.ss58_address, 9), (BOB.ss58_address, 1)] + [(CHARLIE.ss58_address, 1)]
    )
    assert api.get(f"/orders/{BOB.ss58_address}/1").json()["relay_status"] == "pending"


def test_a_batch_answers_what_post_orders_answers(api):
    k = open_interval()
    tampered = body(client_order_id=2)
    tampered["quantity_wh"] = 2_000
    orders = [
        tampered,
        body(signer=DAVE),  # not registered
        body(zone=3),
        body(quantity_wh=0),
        body(quantity_wh=PARAMS.max_quantity_wh + 1),
        body(price_ticks=10_001),
        body(side="offer", source="solar", renewable_only=True),
        body(interval=k + 50),
        {k2: v for k2, v in body().items() if k2 != "price_ticks"},
        {**body(), "colour": "green"},
        {**body(), "side": "buy"},
        {**body(), "owner": "5" * 60_000},
    ]
    in_batch = batch(api, orders)
    alone = [api.post("/orders", json=order) for order in orders]
    assert in_batch == [(r.status_code, r.json()) for r in alone]
    assert all(status >= 400 for status, _ in in_batch)


def test_a_resent_batch_gets_the_same_answers_and_logs_nothing_twice(api, tmp_path):
    k = open_interval()  # pinned: a resend that crossed an interval boundary would differ

    def orders():  # signed again each time: sr25519 signatures differ, the orders do not
        return [body(client_order_id=i, quantity_wh=100 + i, interval=k) for i in range(5)] + [
            body(client_order_id=0, quantity_wh=1, interval=k)
        ]

    first = batch(api, orders())
    assert [s for s, _ in first] == [202] * 5 + [409]
    assert batch(api, orders()) == first
    assert (
        api.post("/orders", json=body(client_order_id=3, quantity_wh=103, interval=k)).json()
        == (first[3][1])
    )
    assert logged(tmp_path) == [(BOB.ss58_address, i) for i in range(5)]


def test_a_malformed_batch_is_refused_whole(api, tmp_path):
    too_many = [body(client_order_id=i) for i in range(13)]  # the fixture allows 12
    response = api.post("/orders/batch", json={"orders": too_many})
    assert error_of(response) == (422, "BatchTooLarge")
    assert response.json()["errors"][0]["field"] == "orders"
    for request in ({"orders": body()}, {"orders": []}, too_many, {"orders": [], "x": 1}):
        assert error_of(api.post("/orders/batch", json=request)) == (422, "InvalidRequest")
    assert error_of(api.get("/orders/batch")) == (405, "MethodNotAllowed")
    assert logged(tmp_path) == []
    assert [s for s, _ in batch(api, too_many[:12])] == [202] * 12


def test_single_orders_commit_once_each(api, commits):
    before = commits()
    for i in range(3):
        assert api.post("/orders", json=body(client_order_id=100 + i)).status_code == 202
    assert commits() - before == 3  # what the batch saves: here 3 fsyncs, in a batch 1


def test_the_batch_body_limit_fits_its_orders(tmp_path):
    largest = {
        "owner": "0x" + "ab" * 32,
        "client_order_id": 2**64 - 1,
        "interval": 2**64 - 1,
        "side": "offer",
        "quantity_wh": 2**64 - 1,
        "price_ticks": 2**64 - 1,
        "zone": 65_535,
        "source": "grid_mix",
        "renewable_only": False,
        "signature": "0x" + "ab" * 64,
    }
    assert len(json.dumps(largest)) <= ORDER_MAX_BYTES
    default = Settings(data_dir=tmp_path)
    assert batch_body_bytes(default) == default.max_body_bytes  # 100 orders fit 64 KiB
    full = json.dumps({"orders": [largest] * default.max_batch_orders})
    assert len(full) <= batch_body_bytes(default)

    # A small body limit: the batch route gets room for its orders, POST /orders does not.
    small = Settings(data_dir=tmp_path, max_body_bytes=4_096, max_batch_orders=20)
    assert batch_body_bytes(small) == 1_024 + 20 * ORDER_MAX_BYTES
    with TestClient(create_app(small, chain=FakeChainView())) as api:
        orders = [body(client_order_id=i) for i in range(20)]
        assert len(json.dumps({"orders": orders})) > 4_096
        assert [s for s, _ in batch(api, orders)] == [202] * 20
        padded = {"orders": orders, "pad": "x" * batch_body_bytes(small)}
        assert error_of(api.post("/orders/batch", json=padded)) == (413, "BodyTooLarge")
        assert error_of(api.post("/orders", json={**body(), "pad": "x" * 4_096})) == (
            413,
            "BodyTooLarge",
        )


def test_the_client_and_the_schema(api, tmp_path):
    client = Client(http=api)
    results = client.place_orders(
        BOB,
        [
            {"side": "bid", "quantity_wh": 1_500, "price_ticks": 80, "client_order_id": 50},
            {"side": "bid", "quantity_wh": 500, "price_ticks": 75, "client_order_id": 51},
            {"side": "bid", "quantity_wh": 0, "price_ticks": 80, "client_order_id": 52},
        ],
    )
    assert [r["order_ref"] for r in results[:2]] == [
        f"{BOB.ss58_address}/50",
        f"{BOB.ss58_address}/51",
    ]
    refused = results[2]
    assert isinstance(refused, OrderRefused)
    assert (refused.status, refused.error) == (422, "ZeroQuantity")
    assert logged(tmp_path) == [(BOB.ss58_address, 50), (BOB.ss58_address, 51)]
    with pytest.raises(OrderRefused, match="BatchTooLarge"):
        client.send_orders([body(client_order_id=i) for i in range(13)])

    schema = api.get("/openapi.json").json()
    operation = schema["paths"]["/orders/batch"]["post"]
    assert operation["operationId"] == "place_orders"
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request == {"$ref": "#/components/schemas/OrderBatchCreate"}
    models = schema["components"]["schemas"]
    items = models["OrderBatchCreate"]["properties"]["orders"]["items"]
    assert items == {"$ref": "#/components/schemas/OrderCreate"} and "OrderCreate" in models
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/OrderBatchPublic"}
    body_schema = models["OrderBatchResult"]["properties"]["body"]
    assert {"$ref": "#/components/schemas/OrderAccepted"} in body_schema["anyOf"]
    assert {"$ref": "#/components/schemas/ErrorPublic"} in body_schema["anyOf"]
