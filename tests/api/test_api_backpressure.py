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
from api.backpressure import PACE_HEADROOM, RelayQueue
from market import OrderSpec, now_ms, sign_order
from market.settings import Settings
from store import DataDir
from store.orderlog import OrderLog


def relay_settings(tmp_path, relay_batch: int, relay_in_flight: int) -> Settings:
    return Settings(
        data_dir=tmp_path,
        order_margin_ms=4_000,
        relay_batch=relay_batch,
        relay_in_flight=relay_in_flight,
        max_open_orders_per_participant=None,
    )


@pytest.fixture
def api(tmp_path):
    with TestClient(create_app(relay_settings(tmp_path, 1, 1), chain=FakeChainView())) as client:
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
    # Default relay settings: one batch (128 entries) a block until a pace is measured; a backlog
    # of 200 is one block.
    settings = Settings(data_dir=tmp_path, order_margin_ms=4_000)
    with TestClient(create_app(settings, chain=FakeChainView())) as api:
        k = open_interval()
        seqs = backlog(tmp_path, 200, k + 6)
        assert api.post("/orders", json=body(client_order_id=1, interval=k)).status_code == 202
        # The relayer gets only 4 entries a second on chain (a slow node): the API measures that
        # while it takes orders for a later interval.
        log = OrderLog(DataDir(tmp_path).orders())
        for step in range(12):
            landed = [(s, None) for s in seqs[2 * step : 2 * step + 2]]
            log.mark_onchain("orders", landed, f"0xb{step}", 7 + step)  # a block each
            posted = api.post("/orders", json=body(client_order_id=100 + step, interval=k + 5))
            assert posted.status_code == 202, posted.text
            time.sleep(0.5)
        # ~200 entries at under 8 a block: far past interval k's gate, so an order for it is
        # refused.
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


def fill(log: OrderLog, n: int, interval: int, first_id: int) -> list[int]:
    """`n` of Dave's orders appended to the log at once (one commit); their seqs. Nothing
    verifies their signatures: no relayer reads them."""
    return log.together(
        lambda: [
            log.append_order(
                DAVE.ss58_address, OrderSpec(first_id + i, interval, "offer", 100, 50), SIG
            ).seq
            for i in range(n)
        ]
    )


def test_before_any_measured_pace_the_api_assumes_one_batch_a_block(tmp_path):
    # 10 batches of 8 in flight: 80 entries a block at most, but a busy chain takes fewer. Until
    # the pace is measured the API counts 8 a block: 200 entries are 25 blocks, 50 s.
    settings = relay_settings(tmp_path, relay_batch=8, relay_in_flight=10)
    with TestClient(create_app(settings, chain=FakeChainView())) as api:
        k = open_interval()  # its gate is 26 to 46 s away
        fill(OrderLog(DataDir(tmp_path).orders()), 200, k + 6, 10_000)
        refused = api.post("/orders", json=body(client_order_id=1, interval=k))
        # At 80 a block the backlog would be 2 blocks, 8 s with the margin: acknowledged.
        assert error_of(refused) == (503, "RelayBacklog"), refused.text
        assert int(refused.headers["retry-after"]) == 50
        assert api.app.state.guards.relay.pace_per_s() is None  # nothing measured: a guess
        # An interval whose gate is past the 54 s is taken.
        assert api.post("/orders", json=body(client_order_id=2, interval=k + 3)).status_code == 202


def test_the_pace_is_what_reached_the_chain_not_the_orders_dropped_late(tmp_path):
    """The relayer drops 20 orders past their gate and gets 2 on chain every half second: the
    backlog's head moves 44 entries a second, but the chain takes 4. An order for interval k,
    behind some 260 entries (65 s at 4 a second; its gate is 26 to 46 s away), would miss its
    gate: the API refuses it, and its measured pace is what reached the chain."""
    # 160 a block at most: what the head's movement was capped to.
    settings = relay_settings(tmp_path, relay_batch=16, relay_in_flight=10)
    with TestClient(create_app(settings, chain=FakeChainView())) as api:
        k = open_interval()
        log = OrderLog(DataDir(tmp_path).orders())
        steps = [
            (fill(log, 20, k - 3, 1_000 * s), fill(log, 2, k + 6, 1_000 * s + 500))
            for s in range(12)
        ]
        fill(log, 250, k + 6, 100_000)
        for step, (late, fresh) in enumerate(steps):
            for seq in late:  # what the relayer does with an order past its gate
                log.mark_rejected("orders", seq, "GateClosed")
            log.mark_onchain("orders", [(s, None) for s in fresh], f"0xb{step}", 100 + step)
            # The API keeps taking orders it can get on chain in time: a later interval's.
            posted = api.post("/orders", json=body(client_order_id=100 + step, interval=k + 5))
            assert posted.status_code == 202, posted.text
            time.sleep(0.5)
        assert log.refusals() == {"GateClosed": 240}

        pace = api.app.state.guards.relay.pace_per_s()
        assert pace is not None and 2 < pace <= 4.0, pace  # 2 a half second; 44 counting the drops
        refused = api.post("/orders", json=body(client_order_id=1, interval=k))
        assert error_of(refused) == (503, "RelayBacklog"), refused.text
        ahead = int(refused.json()["detail"].split(" ", 1)[0])
        to_gate_s = (PARAMS.gate_closure(k) - now_ms()) / 1000
        assert ahead / 4 > to_gate_s  # at the chain's real pace it would have missed its gate
        assert int(refused.headers["retry-after"]) > to_gate_s  # and Retry-After says so
        assert log.order(body()["owner"], 1) is None  # nothing logged


def test_a_stalled_relay_promises_nothing_and_the_last_pace_outlives_the_backlog(tmp_path):
    settings = Settings(data_dir=tmp_path, order_margin_ms=1_000, relay_batch=8, relay_in_flight=10)
    queue = RelayQueue(settings, refresh_s=0, window_s=1.5, min_span_s=0.5)
    log = OrderLog(DataDir(tmp_path).orders())
    seqs = fill(log, 60, 10, 1)
    assert queue.ahead(log) == 60
    assert queue.drain_ms(60, 2_000) == 7 * 2_000  # no pace yet: 8 a block, not 80
    for step in range(6):  # 5 entries on chain every 0.25 s: 20 a second
        time.sleep(0.25)
        log.mark_onchain("orders", [(s, None) for s in seqs[5 * step : 5 * step + 5]], "0xb", step)
        queue.ahead(log)
    measured = queue.pace_per_s()
    assert measured is not None and 8 < measured <= 20, measured

    # Then nothing reaches the chain (a node restart): after the margin with a backlog and no
    # block, the pace is 0 and every entry ahead counts as a block of its own.
    deadline = time.monotonic() + 5
    while queue.pace_per_s() != 0 and time.monotonic() < deadline:
        measured = queue.pace_per_s() or measured  # the window slides over the last landings
        time.sleep(0.1)
        assert queue.ahead(log) == 30
    assert queue.pace_per_s() == 0
    assert queue.drain_ms(30, 2_000) == 30 * 2_000

    # The backlog reaches the chain: the last pace measured (not the stall) is kept for the next.
    log.mark_onchain("orders", [(s, None) for s in seqs[30:]], "0xc", 9)
    assert queue.ahead(log) == 0
    assert queue.pace_per_s() == measured
    per_block = measured * PACE_HEADROOM * 2
    assert queue.drain_ms(100, 2_000) == int(100 // per_block) * 2_000
