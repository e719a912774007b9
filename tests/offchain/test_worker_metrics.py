"""The workers' Prometheus metrics (issue 11, "Metrics") move with what the relayer and the
scheduler do: relay lag in blocks and seconds, backlog, entries relayed and refused; clearing
attempts by state, the last cleared interval, the next one, voided intervals. Against scripted
chains (no node); and `wattchain workers` serves them on `metrics_port`."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client import REGISTRY
from test_relayer_logic import PARAMS, ScriptedChain, log_orders, run

from chain import ChainOrder, Event, PendingTx, Receipt
from market import OrderSpec, dev_keypair
from market.settings import Settings
from offchain.relayer import Relayer
from offchain.scheduler import Scheduler, clearing_pages
from offchain.workers import Workers
from store import DataDir


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_relay_lag_backlog_and_outcomes(tmp_path):
    data = DataDir(tmp_path)
    log_orders(data, 5)
    relayed = value("wattchain_relayed_total", kind="order")
    lags = value("wattchain_relay_lag_blocks_count", kind="order")
    lag_blocks = value("wattchain_relay_lag_blocks_sum", kind="order")
    late = value("wattchain_relay_rejected_total", kind="order", reason="GateClosed")

    # The relayer cannot pay its fees: nothing leaves the log, the backlog shows it.
    broke = ScriptedChain(refuse=lambda f, items: "Inability to pay some fees")
    relayer = Relayer(data, broke, dev_keypair("Dave"), partial_lead_ms=None, batch=8)
    time.sleep(0.01)
    relayer.step()
    assert value("wattchain_relay_backlog", kind="order", state="pending") == 5
    assert value("wattchain_relay_oldest_pending_age_seconds", kind="order") > 0

    # It can again: every entry lands in block 5, sent when the best block was 0.
    run(Relayer(data, ScriptedChain(), dev_keypair("Dave"), partial_lead_ms=None, batch=8))
    assert value("wattchain_relayed_total", kind="order") - relayed == 5
    assert value("wattchain_relay_lag_blocks_count", kind="order") - lags == 5
    assert value("wattchain_relay_lag_blocks_sum", kind="order") - lag_blocks == 5 * 5
    assert value("wattchain_relay_lag_seconds_count", kind="order") >= 5
    assert value("wattchain_relay_backlog", kind="order", state="pending") == 0
    assert value("wattchain_relay_backlog", kind="order", state="in_flight") == 0
    assert value("wattchain_relay_oldest_pending_age_seconds", kind="order") == 0

    current = PARAMS.interval_at(time.time_ns() // 1_000_000)
    log_orders(data, 1, interval=current - 1, start=50)  # its gate is long past
    run(Relayer(data, ScriptedChain(), dev_keypair("Dave"), partial_lead_ms=None), rounds=1)
    assert value("wattchain_relay_rejected_total", kind="order", reason="GateClosed") - late == 1


class ClearingChain:
    """Just enough of a chain for one clearing and one voiding: the clearing lands at once; the
    interval to void is voided by the first `void_interval`."""

    def __init__(self, book=()):
        self.voided: dict[int, int] = {}
        self.book = list(book)
        self.submitted: list[str] = []

    def market_params(self, block_hash=None, interval=None):
        return PARAMS

    def is_cleared(self, interval):
        return False

    def orders_of_interval(self, interval, block_hash=None):
        return self.book

    def grid(self, block_hash=None, *, interval=None):
        return []

    def book_len(self, interval):
        return 0

    def max_matches_per_page(self):
        return 10_000

    def book_page_size(self):
        return 256

    def voided_at(self, interval, block_hash=None):
        return self.voided.get(interval)

    def finalized_hash(self):
        return "0xf1"

    # The weight of the call that applies a clearing, and a block's limit (ref time, ps).
    applying_ps = 400 * 10**9

    def raw_call_ref_time(self, function, args):
        return self.applying_ps

    def max_call_ref_time(self):
        return 650 * 10**9

    def submit_nowait(self, signer, function, params, *, before_broadcast=None, **_):
        self.submitted.append(function)
        tx = PendingTx("0x" + "11" * 32, signer.ss58_address, 1, function, "0x00", 3, 19)
        if before_broadcast is not None:
            before_broadcast(tx)
        return tx

    def wait(self, txs, *, finality=True, timeout_s=None):
        return [Receipt(txs[0].tx_hash, "0xb1", 4, 1, True, None, [], finalized=True)]

    def submit(self, signer, function, params, **_):
        self.voided[params["interval"]] = 9
        event = Event("EnergyTrading", "IntervalVoiding", {"total": 0}, 1, 0)
        return Receipt("0x" + "22" * 32, "0xb2", 9, 1, True, None, [event])


class EmptyClearing:
    mechanism = "uniform"

    def to_json_dict(self):
        return {"mechanism": "uniform", "price": None, "volume_wh": 0, "matches": []}

    def chain_zone_prices(self):
        return []


def test_clearing_progress(tmp_path):
    data = DataDir(tmp_path)
    chain = ClearingChain()
    attempts = {
        state: value("wattchain_clearing_attempts_total", state=state)
        for state in ("signing", "submitted", "committed", "voiding", "voided", "skipped")
    }
    voided = value("wattchain_intervals_voided_total")
    latencies = value("wattchain_clearing_commit_latency_seconds_count")
    k = 10**6  # above any interval an earlier test cleared: the gauge only goes up

    scheduler = Scheduler(
        data,
        chain,
        dev_keypair("One"),
        clear_fn=lambda orders, mechanism, network: EmptyClearing(),
        start_interval=k,
    )
    assert value("wattchain_clearing_next_interval") == k
    assert scheduler.clear_interval(k, book_at="0xb0")["state"] == "committed"
    assert value("wattchain_last_cleared_interval") == k
    assert value("wattchain_clearing_commit_latency_seconds_count") - latencies == 1
    assert scheduler.void_interval(k + 1)["state"] == "voided"
    assert value("wattchain_intervals_voided_total") - voided == 1
    scheduler._record_skip(k + 2)
    scheduler._set_next(k + 3)
    assert value("wattchain_clearing_next_interval") == k + 3
    moved = {
        state: value("wattchain_clearing_attempts_total", state=state) - before
        for state, before in attempts.items()
    }
    assert moved == {
        "signing": 1,
        "submitted": 1,
        "committed": 1,
        "voiding": 1,
        "voided": 1,
        "skipped": 1,
    }
    assert value("wattchain_last_cleared_interval") == k  # a void or a skip clears nothing

    # A restarted scheduler shows the progress ops.db holds.
    Scheduler(DataDir(tmp_path), chain, dev_keypair("One"))
    assert value("wattchain_last_cleared_interval") == k
    assert value("wattchain_clearing_next_interval") == k + 3


def test_workers_serve_their_metrics_on_metrics_port(tmp_path, free_port):
    port = free_port()
    settings = Settings(data_dir=tmp_path, node_url="ws://127.0.0.1:1", metrics_port=port)
    workers = Workers(settings, names=()).start()  # no worker threads: only the server
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "wattchain_relay_backlog" in text and "wattchain_clearing_attempts_total" in text
        with pytest.raises(OSError, match=f"127.0.0.1:{port}.*metrics_port"):
            Workers(settings, names=()).start()  # the port is taken: said with its name
    finally:
        workers.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)


def test_the_matcher_clears_over_the_chains_grid():
    """The scheduler gives the matcher the chain's lines, over the book's zones and the lines'."""
    import matcher
    from chain import ChainOrder, GridLine
    from market import OrderSpec
    from offchain.scheduler import matcher_network

    book = [ChainOrder(1, "x", OrderSpec(1, 5, "bid", 10, 50, zone=7), "open")]
    # No lines: every zone trades on its own.
    assert matcher_network([], book) == {"zones": [7], "lines": []}
    assert matcher_network([], []) is None
    network = matcher_network([GridLine(0, 1, 300, 5)], book)
    assert network == {
        "zones": [0, 1, 7],
        "lines": [{"from": 0, "to": 1, "capacity_wh": 300, "fee": 5}],
    }
    matcher.Network.from_dict(network)  # one the matcher takes
    # A u64 line above what the matcher takes (an "unlimited" one) is the matcher's largest.
    unlimited = matcher_network([GridLine(0, 1, 2**64 - 1, 2**64 - 1)], book)
    assert unlimited["lines"][0]["capacity_wh"] == unlimited["lines"][0]["fee"] == 2**63 - 1
    matcher.Network.from_dict(unlimited)


def test_a_clearing_the_chain_would_refuse_is_never_submitted(tmp_path):
    """A refused clearing costs the submitter its deposit, so the scheduler checks it first by
    the chain's rules. Here the uniform matcher pools two zones that no line joins (NoLine on
    chain): logged as rejected and alerted, nothing signed, and voided at the interval's end."""
    k = 2 * 10**6
    crossing = [
        ChainOrder(1, "bob", OrderSpec(1, k, "offer", 500, 40, zone=1), "open"),
        ChainOrder(2, "ann", OrderSpec(2, k, "bid", 500, 60, zone=0), "open"),
    ]
    data = DataDir(tmp_path)
    chain = ClearingChain(crossing)
    scheduler = Scheduler(data, chain, dev_keypair("One"), start_interval=k)
    attempt = scheduler.clear_interval(k, book_at="0xb0")
    assert attempt["state"] == "rejected"
    assert attempt["error"].startswith("local check: no_line: bid 2, offer 1: no line joins")
    assert chain.submitted == []
    alerts = [(r["name"], r["interval"]) for r in data.ops().execute("SELECT * FROM alerts")]
    assert alerts == [("ClearingRejected", k)]
    # Without the check (as for a matcher bug the check misses), it would have gone out.
    unchecked = Scheduler(DataDir(tmp_path / "b"), chain, dev_keypair("One"), precheck=False)
    assert unchecked.clear_interval(k, book_at="0xb0")["state"] == "committed"
    assert chain.submitted == ["submit_clearing"]


def test_a_clearing_goes_in_pages_sorted_by_the_book_pages_it_names():
    """Matches sorted by their bid's book page, then their offer's, and cut into pages: each
    page names few book pages, which the chain reads once a page. One page when all fit."""
    size = 256
    # Interval 3's orders: slot s has id 3 << 20 | s.
    ids = [3 << 20 | slot for slot in range(4 * size)]
    matches = [
        {"bid": ids[b], "offer": ids[o], "quantity_wh": 1, "buyer_price": 5, "seller_price": 5}
        for b, o in [(3 * size, 1), (0, 2 * size), (size + 1, 0), (1, size)]
    ]
    assert clearing_pages(matches, 4, size) == [matches]
    pages = clearing_pages(matches, 3, size)
    assert [len(p) for p in pages] == [3, 1]
    slot = (1 << 20) - 1
    named = [(m["bid"] & slot, m["offer"] & slot) for p in pages for m in p]
    book_pages = [(bid // size, offer // size) for bid, offer in named]
    assert book_pages == [(0, 1), (0, 2), (1, 0), (3, 0)]


def test_a_clearing_too_heavy_for_a_block_is_never_registered(tmp_path):
    """The call that applies a clearing pays every trader once, priced as the whole clearing.
    One above a block's limit would be refused by the pool only after its registration and
    earlier pages had landed, their deposit then burned at the interval's end: so the scheduler
    asks the runtime first, and nothing is signed. The reason names the figures."""
    k = 3 * 10**6
    crossing = [
        ChainOrder(1, "bob", OrderSpec(1, k, "offer", 500, 40), "open"),
        ChainOrder(2, "ann", OrderSpec(2, k, "bid", 500, 60), "open"),
    ]
    data = DataDir(tmp_path)
    chain = ClearingChain(crossing)
    chain.applying_ps = 900 * 10**9
    attempt = Scheduler(data, chain, dev_keypair("One"), start_interval=k).clear_interval(
        k, book_at="0xb0"
    )
    assert attempt["state"] == "rejected" and chain.submitted == []
    assert attempt["error"] == (
        "local check: applying 1 matches between 2 traders of a book of 2 orders takes 900 ms"
        " of weight, more than the 650 ms a block allows one call; not registered (the interval"
        " is voided at its end and every hold released)"
    )
