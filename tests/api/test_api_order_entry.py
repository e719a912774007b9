"""POST /orders answered directly (api/order_entry.py, issue 11's throughput): every answer is
the one the framework's route gives, and the direct path does take the valid
orders. Against the stand-in chain view of test_api_offline.py: no node."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from test_api_offline import BOB, CHARLIE, DAVE, PARAMS, FakeChainView, body, open_interval

from api import intake
from api.app import create_app
from api.order_entry import INTAKE_THREADS, DirectOrderEntry
from chain import ChainUnavailable
from market import dev_keypair
from market.settings import Settings

JSON = {"content-type": "application/json"}
EVE = dev_keypair("Eve")


class OutageForEve(FakeChainView):
    """The node does not answer about Eve: her order gets 503 ChainUnavailable, Retry-After."""

    def zone_of(self, account):
        if account == EVE.ss58_address:
            raise ChainUnavailable("node down")
        return super().zone_of(account)


def requests(k: int) -> list[tuple[bytes, dict[str, str]]]:
    """(body, headers) of POST /orders: valid orders, each refusal of the intake, and bodies the
    direct path passes on to the route."""

    def order(**kw) -> bytes:
        return json.dumps(body(interval=k, **kw)).encode()

    bad_signature = {**body(interval=k, client_order_id=7), "signature": "0x" + "00" * 64}
    now_interval = PARAMS.interval_at(time.time_ns() // 1_000_000)
    cases = [
        order(client_order_id=1),
        order(client_order_id=1),  # the same order again: the first answer
        order(client_order_id=1, quantity_wh=999),  # its id, other content: 409
        order(client_order_id=2, side="offer", source="solar"),  # self-trade: 409
        json.dumps(bad_signature).encode(),
        order(signer=DAVE, client_order_id=3),  # not registered
        order(client_order_id=4, zone=3),
        order(client_order_id=5, price_ticks=0),
        json.dumps(body(client_order_id=6, interval=now_interval)).encode(),  # gate closed
        order(signer=CHARLIE, client_order_id=8, zone=1, price_ticks=900),  # over its balance
        json.dumps({**body(interval=k, client_order_id=9), "owner": "nobody"}).encode(),
        order(signer=EVE, client_order_id=15),  # the node does not answer
        # Passed on to the route: not JSON, not an order, not JSON by its content type.
        b'{"owner": ',
        b"[1, 2]",
        json.dumps({**body(interval=k, client_order_id=10), "quantity_wh": 1.5}).encode(),
        json.dumps({**body(interval=k, client_order_id=11), "extra": 1}).encode(),
        b"",
    ]
    sent = [(case, JSON) for case in cases]
    sent.append((order(client_order_id=12), {"content-type": "application/json; charset=utf-8"}))
    sent.append((order(client_order_id=13), {"content-type": "text/plain"}))
    sent.append((order(client_order_id=14), {}))
    return sent


def answers(app, sent) -> tuple[list[tuple[int, dict | None, dict]], dict]:
    """Each request's (status, JSON body less its time, headers that matter), and how the
    order counters moved."""

    def counted() -> dict:
        return {
            (m.name, tuple(sorted(s.labels.items()))): s.value
            for m in REGISTRY.collect()
            if m.name.startswith("wattchain_orders_")
            for s in m.samples
            if s.name.endswith("_total")
        }

    got = []
    before = counted()
    with TestClient(app) as api:
        for content, headers in sent:
            response = api.post("/orders", content=content, headers=headers)
            try:
                payload = response.json()
                payload.pop("received_ms", None)
            except ValueError:
                payload = None
            kept = {h: response.headers.get(h) for h in ("content-type", "retry-after")}
            got.append((response.status_code, payload, kept))
    after = counted()
    moved = {key: after[key] - before.get(key, 0.0) for key in after}
    return got, {key: n for key, n in moved.items() if n}


def test_the_direct_path_answers_as_the_route_does(tmp_path, monkeypatch):
    # Which thread checked each order: the direct path's is "order-intake", the route's are
    # the framework's.
    threads: list[str] = []
    verified = intake.verified

    def spied(*args):
        threads.append(threading.current_thread().name)
        return verified(*args)

    monkeypatch.setattr(intake, "verified", spied)
    # One clock for both runs: a refusal names the next open interval, which must not move
    # between them.
    now = intake.now_ms()
    monkeypatch.setattr(intake, "now_ms", lambda: now)

    def app(folder: str, direct: bool):
        settings = Settings(data_dir=tmp_path / folder, order_margin_ms=4_000)
        made = create_app(settings, chain=OutageForEve())
        if not direct:  # the framework's route alone
            kept = [m for m in made.user_middleware if m.cls is not DirectOrderEntry]
            made.user_middleware = kept
        return made

    sent = requests(open_interval())
    route, route_counts = answers(app("route", direct=False), sent)
    assert threads and "order-intake" not in threads
    threads.clear()
    direct, direct_counts = answers(app("direct", direct=True), sent)

    for case, (expected, got) in enumerate(zip(route, direct, strict=True)):
        assert got == expected, (case, sent[case][0][:80])
    assert direct_counts == route_counts
    # The cases refused on their form or their content type (422 InvalidRequest) are the
    # route's; every well-formed order is the direct path's.
    statuses = [status for status, _, _ in direct]
    assert statuses[:12] == [202, 202, 409, 409, 400, 403, 422, 422, 422, 422, 400, 503]
    assert statuses[12:] == [422, 422, 422, 422, 422, 202, 422, 422]
    assert direct[11][2]["retry-after"] == "2"
    assert len(threads) == 13 and set(threads) == {"order-intake"}


@pytest.mark.parametrize("declared", [True, False])
def test_a_body_over_the_limit_is_refused_before_the_direct_path_reads_it(tmp_path, declared):
    app = create_app(Settings(data_dir=tmp_path, max_body_bytes=4_096), chain=FakeChainView())
    big = json.dumps({**body(client_order_id=1), "owner": "x" * 8_000}).encode()
    with TestClient(app) as api:
        if declared:
            response = api.post("/orders", content=big, headers=JSON)
        else:  # chunked: no Content-Length, counted as it arrives
            response = api.post("/orders", content=iter([big[:3_000], big[3_000:]]), headers=JSON)
    assert response.status_code == 413 and response.json()["error"] == "BodyTooLarge"


def test_the_direct_path_logs_the_order_for_relay(tmp_path):
    k = open_interval()
    app = create_app(Settings(data_dir=tmp_path, order_margin_ms=4_000), chain=FakeChainView())
    with TestClient(app) as api:
        accepted = api.post("/orders", json=body(client_order_id=21, interval=k))
        assert accepted.status_code == 202, accepted.text
        shown = api.get(f"/orders/{BOB.ss58_address}/21").json()
    assert shown["relay_status"] == "pending" and shown["interval"] == k
    assert accepted.json()["log_seq"] >= 1


def test_orders_that_arrive_together_are_admitted_as_one_group(tmp_path, monkeypatch):
    # Each intake thread is held on a group of one order while 40 more arrive: those are then
    # admitted in a few groups, not one by one; an order whose check fails for a fault of the
    # API gets its 500 alone, and the rest of its group is logged.
    groups: list[int] = []
    release = threading.Event()
    admit_together, admit_order = intake.admit_together, intake.admit_order

    def held(batch, *args):
        groups.append(len(batch))
        release.wait(10)
        return admit_together(batch, *args)

    def faulty(order, *args):
        if order.spec.client_order_id == 13:
            raise RuntimeError("a fault of the API")
        return admit_order(order, *args)

    def until(done) -> None:
        deadline = time.monotonic() + 10
        while not done():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    monkeypatch.setattr(intake, "admit_together", held)
    monkeypatch.setattr(intake, "admit_order", faulty)
    k = open_interval()
    app = create_app(
        Settings(data_dir=tmp_path, order_margin_ms=4_000, max_open_orders_per_participant=None),
        chain=FakeChainView(),
    )
    first, n = INTAKE_THREADS, 40
    with TestClient(app, raise_server_exceptions=False) as api:
        waiting = app.state.order_queue._queue

        def place(i: int) -> int:
            return api.post("/orders", json=body(client_order_id=i, interval=k)).status_code

        with ThreadPoolExecutor(first + n) as pool:
            sent = []
            for i in range(first):  # one thread after the other takes one order and is held
                sent.append(pool.submit(place, i))
                until(lambda i=i: len(groups) == i + 1)
            sent += [pool.submit(place, i) for i in range(first, first + n)]
            until(lambda: waiting.qsize() == n)
            release.set()
            statuses = [f.result(10) for f in sent]
        assert groups[:first] == [1] * first
        assert sum(groups[first:]) == n and len(groups[first:]) <= INTAKE_THREADS, groups
        assert statuses == [202] * 13 + [500] + [202] * (first + n - 14)
        listed = api.get(f"/orders/{BOB.ss58_address}/14").json()
    assert listed["relay_status"] == "pending"
    logged = app.state.data.orders().execute("SELECT count(*) FROM orders").fetchone()[0]
    assert logged == first + n - 1


def test_a_group_that_fails_whole_gets_its_500s_and_the_intake_goes_on(tmp_path, monkeypatch):
    # A failed commit (here any fault of the group as a whole): its orders are answered 500,
    # none is logged, and the intake threads take the next orders as before.
    admit_together = intake.admit_together
    failures = iter([RuntimeError("the commit failed")])

    def failing_once(batch, *args):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return admit_together(batch, *args)

    monkeypatch.setattr(intake, "admit_together", failing_once)
    k = open_interval()
    app = create_app(Settings(data_dir=tmp_path, order_margin_ms=4_000), chain=FakeChainView())
    with TestClient(app, raise_server_exceptions=False) as api:
        failed = api.post("/orders", json=body(client_order_id=31, interval=k))
        assert failed.status_code == 500 and failed.json()["error"] == "InternalError"
        assert api.get(f"/orders/{BOB.ss58_address}/31").status_code == 404
        for i in range(2 * INTAKE_THREADS):
            placed = api.post("/orders", json=body(client_order_id=32 + i, interval=k))
            assert placed.status_code == 202, placed.text
