"""Back-pressure (issue 11): the API refuses, with 503 RelayBacklog and Retry-After, an order the
relayer could not get on chain before its gate given the relay backlog and the block time, and
takes it again once the backlog has drained. Against the stand-in chain view of
test_api_offline.py (block time 2 s), with the relayer held to one entry per block so that a
backlog of a few dozen entries is already a minute of blocks."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from test_api_offline import DAVE, GENESIS, PARAMS, FakeChainView, body, error_of, open_interval

from api.app import create_app
from api.backpressure import RelayQueue
from market import OrderSpec, now_ms, sign_order
from market.settings import Settings
from store import DataDir
from store.orderlog import OrderLog


@pytest.fixture
def api(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        order_margin_ms=4_000,
        relay_batch=1,
        relay_in_flight=1,
        max_open_orders_per_participant=None,
    )
    with TestClient(create_app(settings, chain=FakeChainView())) as client:
        yield client


SIG = "0x" + "11" * 64


def backlog(tmp_path, n: int, interval: int) -> list[int]:
    """`n` orders of Dave's in the log, waiting for the relayer; their log seqs."""
    log = OrderLog(DataDir(tmp_path).orders())
    seqs = []
    for i in range(n):
        signed = sign_order(DAVE, GENESIS, OrderSpec(10_000 + i, interval, "offer", 100, 50))
        seqs.append(
            log.append_order(DAVE.ss58_address, signed.spec, "0x" + signed.signature.hex()).seq
        )
    return seqs


def test_an_order_that_would_miss_its_gate_behind_the_backlog_is_refused(api, tmp_path):
    k = open_interval()  # its gate is 26 to 46 s away
    seqs = backlog(tmp_path, 30, k + 6)  # 30 blocks of 2 s to drain, + the 4 s margin: 64 s
    refused = api.post("/orders", json=body(client_order_id=1, interval=k))
    assert error_of(refused) == (503, "RelayBacklog"), refused.text
    assert int(refused.headers["retry-after"]) == 60  # when the backlog will have drained
    detail = refused.json()["detail"]
    assert "30 orders and cancels wait to be relayed" in detail
    first_in_time = int(detail.rsplit(" ", 1)[1])
    assert k < first_in_time <= k + 4
    # A later interval is reached in time, and nothing was logged for the refused order.
    assert api.post("/orders", json=body(client_order_id=2, interval=k + 4)).status_code == 202
    log = OrderLog(DataDir(tmp_path).orders())
    assert log.order(body()["owner"], 1) is None

    # The relayer gets the backlog on chain: the same order is taken.
    log.mark_onchain("orders", [(s, None) for s in seqs], "0xblock", 7)
    time.sleep(0.3)  # the API counts the backlog at most every 0.25 s
    assert api.post("/orders", json=body(client_order_id=1, interval=k)).status_code == 202


def test_a_batch_counts_its_own_orders_in_the_backlog(api):
    k = open_interval()
    results = api.post(
        "/orders/batch",
        json={"orders": [body(client_order_id=i, interval=k) for i in range(25)]},
    ).json()["results"]
    statuses = [(r["status"], r["body"].get("error")) for r in results]
    # Order i waits behind the i before it: in a block (i + 2) x 2 s from now; the gate is 26
    # to 46 s away, so the first 11 make it and the last 4 cannot.
    assert all(s == (202, None) for s in statuses[:11]), statuses
    assert all(s == (503, "RelayBacklog") for s in statuses[21:]), statuses
    # Refused ones stay refused in order: no order after a refused one was taken.
    first_refused = next(i for i, s in enumerate(statuses) if s[0] != 202)
    assert all(s[0] == 503 for s in statuses[first_refused:]), statuses


def test_the_relayers_measured_pace_counts_when_it_is_slower_than_nominal(tmp_path):
    # Default relay settings: 384 entries a block, nominally; a backlog of 200 is one block.
    settings = Settings(data_dir=tmp_path, order_margin_ms=4_000)
    with TestClient(create_app(settings, chain=FakeChainView())) as api:
        k = open_interval()
        seqs = backlog(tmp_path, 200, k + 6)
        assert api.post("/orders", json=body(client_order_id=1, interval=k)).status_code == 202
        # The relayer moves only 4 entries a second (a slow node): the API sees the backlog's
        # head creep while it takes orders for a later interval.
        log = OrderLog(DataDir(tmp_path).orders())
        for step in range(12):
            log.mark_onchain("orders", [(s, None) for s in seqs[2 * step : 2 * step + 2]], "0xb", 7)
            posted = api.post("/orders", json=body(client_order_id=100 + step, interval=k + 5))
            assert posted.status_code == 202, posted.text
            time.sleep(0.5)
        # ~190 entries at 8 a block: far past interval k's gate, so an order for it is refused.
        refused = api.post("/orders", json=body(client_order_id=2, interval=k))
        assert error_of(refused) == (503, "RelayBacklog"), refused.text


def test_an_order_the_margin_admits_is_not_refused_for_a_backlog_under_a_block(tmp_path):
    """What GateClosed (and /market's next_open_interval) admits, a relayer with less than a
    block's worth ahead does not refuse: an order 4.5 s before its gate, with the 4 s margin."""
    queue = RelayQueue(Settings(data_dir=tmp_path, order_margin_ms=4_000))
    log = OrderLog(DataDir(tmp_path).orders())
    k = open_interval()
    backlog(tmp_path, 3, k)  # well under one block's 384 entries
    # Parameters under which interval k's gate is 4.5 s from now.
    params = replace(PARAMS, gate_closure_ms=k * PARAMS.interval_ms - (now_ms() + 4_500))
    spec = OrderSpec(1, k, "bid", 100, 50)
    appended = queue.append_in_time(
        log,
        params,
        2_000,
        k,
        lambda t: log.append_order(DAVE.ss58_address, spec, SIG, not_after_ms=t),
    )
    assert appended.outcome == "new"
