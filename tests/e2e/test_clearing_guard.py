"""The scheduler's guards against a real node: a clearing the chain rejects is recorded with the
pallet's error name, raised as an alert and never submitted again, and the interval is voided
at its end with every hold released; a crash between submitting a clearing and its inclusion
does not clear the interval twice, nor does one in the middle of a clearing sent in pages; a
page the node lost is sent again under the same registration."""

from __future__ import annotations

import dataclasses

import pytest
from e2e_helpers import setup_participants, wait_for_gate, wait_until

import matcher
from chain import PALLET, Chain, ChainError, GridLine
from market import OrderSpec, keypair, now_ms, sign_order, ss58
from meter_bridge import MeterKey
from offchain import scheduler as scheduler_module
from offchain.scheduler import Scheduler
from store import DataDir

SELLER, BUYER = "//Guard/seller", "//Guard/buyer"
SUBMITTER = "//One"  # the dev chain's clearing submitter (not the operator, Alice)


@pytest.fixture(scope="module")
def node(node_binary, tmp_path_factory):
    from wattchain.node import DevNode

    root = tmp_path_factory.mktemp("guard")
    node = DevNode(node_binary, log_path=root / "node.log").start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def chain(node):
    chain = Chain(node.url).connect()
    chain.born_in = chain.market_params().interval_at(
        now_ms()
    )  # no interval before it holds orders
    # The seller's solar meter backs its solar offers (a renewable offer needs one).
    setup_participants(
        chain, [SELLER, BUYER], meters={SELLER: MeterKey.from_uri(f"{SELLER}/meter").public_key_hex}
    )
    yield chain
    chain.close()


def place_crossing_orders(chain: Chain, interval: int) -> None:
    """An offer at 40 and two bids at 70 and 50 (2 x 600 Wh wanted, 800 Wh offered)."""
    seller, buyer = keypair(SELLER), keypair(BUYER)
    base = now_ms() * 10
    orders = [
        sign_order(
            seller, chain.genesis_hash, OrderSpec(base, interval, "offer", 800, 40, source="solar")
        ),
        sign_order(buyer, chain.genesis_hash, OrderSpec(base + 1, interval, "bid", 600, 70)),
        sign_order(buyer, chain.genesis_hash, OrderSpec(base + 2, interval, "bid", 600, 50)),
    ]
    chain.place_orders_relayed(keypair("//Dave"), orders)


def not_in_equilibrium(orders, mechanism, network):
    """A 'clearing' that leaves gains from trade on the table: it keeps only the second match
    (200 Wh to the bid at 50), so the bid at 70 and 600 Wh of the offer at 40 stay unfilled
    around the price of 50."""
    clearing = matcher.clear_orders(orders, mechanism=mechanism)
    assert len(clearing.bid) == 2 and clearing.price == 50
    keep = slice(1, 2)
    clearing.bid, clearing.offer = clearing.bid[keep], clearing.offer[keep]
    clearing.quantity_wh, clearing.buyer_price = (
        clearing.quantity_wh[keep],
        clearing.buyer_price[keep],
    )
    clearing.seller_price = clearing.seller_price[keep]
    clearing.volume_wh = int(clearing.quantity_wh.sum())
    return clearing


def test_a_rejected_clearing_is_logged_alerted_and_not_retried(chain, tmp_path):
    params = chain.market_params()
    k = params.first_open_interval(now_ms(), 4_000)
    place_crossing_orders(chain, k)
    data = DataDir(tmp_path)
    operator = keypair(SUBMITTER)
    # Without the scheduler's own check (which would keep this clearing back), as for a
    # matcher bug the check misses: the chain is the last word, and the deposit goes.
    scheduler = Scheduler(
        data, chain, operator, clear_fn=not_in_equilibrium, precheck=False, start_interval=k
    )
    wait_until(lambda: scheduler.step() is not None, 60, f"the scheduler to take interval {k}")
    (attempt,) = scheduler.attempts(k)
    assert attempt["state"] == "rejected" and attempt["error"] == "NotEquilibrium"
    assert attempt["block_hash"] and attempt["extrinsic_index"] is not None  # it did reach a block
    alerts = [dict(r) for r in data.ops().execute("SELECT * FROM alerts")]
    assert [(a["name"], a["interval"]) for a in alerts] == [("ClearingRejected", k)]
    assert "NotEquilibrium" in alerts[0]["detail"]
    assert not chain.is_cleared(k)

    # Asked again (a later loop, a restart with a fixed matcher): nothing is submitted.
    nonce = chain.account_next_nonce(operator.ss58_address)
    for again in (scheduler, Scheduler(data, Chain(chain.url).connect(), operator)):
        assert again.clear_interval(k)["state"] == "rejected"
    assert chain.account_next_nonce(operator.ss58_address) == nonce
    assert len(scheduler.attempts(k)) == 1
    assert not chain.is_cleared(k)

    # No funds stay held: at the interval's end (its clearing deadline) it is voided.
    buyer = keypair(BUYER).ss58_address
    assert chain.balance(buyer).reserved == 600 * 70 + 600 * 50
    end = params.interval_end(k)
    wait_until(lambda: chain.timestamp_ms() >= end, 60, f"the end of interval {k} on chain")
    voided = scheduler.void_overdue()
    assert [v["state"] for v in voided] == ["voided"]
    assert chain.voided_at(k) is not None
    assert chain.balance(buyer).reserved == 0
    # Voiding writes no order: the interval's `Voided` record is what became of them.
    assert {o.status for o in chain.orders_of_interval(k)} == {"open"}
    names = [r["name"] for r in data.ops().execute("SELECT name FROM alerts ORDER BY id")]
    assert names == ["ClearingRejected", "IntervalVoided"]
    assert scheduler.void_overdue() == []  # done once


class Crash(Exception):
    """The process dies here."""


class CrashAfterBroadcast(Scheduler):
    def _follow(self, attempt_id, interval, tx):
        raise Crash(tx.tx_hash)


class CrashBeforeBroadcast(Scheduler):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        real = self.chain.broadcast

        def broadcast(tx):
            if tx.call.endswith("submit_clearing"):
                raise Crash(tx.tx_hash)  # logged as signed, never handed to the node
            return real(tx)

        self.chain.broadcast = broadcast


@pytest.mark.parametrize("crashing", [CrashAfterBroadcast, CrashBeforeBroadcast])
def test_a_crash_between_submit_and_inclusion_does_not_clear_twice(chain, tmp_path, crashing):
    params = chain.market_params()
    k = params.first_open_interval(now_ms(), 4_000)
    place_crossing_orders(chain, k)
    data = DataDir(tmp_path)
    operator = keypair(SUBMITTER)
    first = crashing(data, Chain(chain.url).connect(), operator, start_interval=k)
    book_at = wait_for_gate(chain, k)
    with pytest.raises(Crash):
        first.clear_interval(k, book_at=book_at)
    (attempt,) = first.attempts(k)
    assert (
        attempt["state"] == "signed"
        if crashing is CrashBeforeBroadcast
        else attempt["state"] in ("signed", "submitted")
    )

    # The restarted scheduler finishes what was started, with the very same extrinsic.
    restarted = Scheduler(DataDir(tmp_path), Chain(chain.url).connect(), operator)
    outcome = restarted.clear_interval(k)
    assert outcome["state"] == "committed" and outcome["tx_hash"] == attempt["tx_hash"]
    assert restarted.clear_interval(k)["state"] == "committed"  # and again: nothing new
    assert len(restarted.attempts(k)) == 1
    summary = chain.clearing(k)
    assert (summary.volume_wh, summary.zone_prices) == (800, [(0, 50)])
    accepted = [
        e
        for n in range(summary.block_number - 3, chain.best_number() + 1)
        for e in chain.events(chain.block_hash(n))
        if e.pallet == PALLET
        and e.name == "ClearingAccepted"
        and int(e.attributes["interval"]) == k
    ]
    assert len(accepted) == 1


def set_mechanism(chain: Chain, mechanism: str) -> int:
    """The operator (Alice) sets the market's mechanism; returns the first interval it governs
    (the first whose gate is still open: the others keep theirs)."""
    params = dataclasses.replace(chain.market_params(), mechanism=mechanism)
    receipt = chain.submit(keypair("//Alice"), "set_market_params", {"params": params.as_chain()})
    (event,) = [e for e in receipt.events if e.name == "MarketParamsSet"]
    return int(event.attributes["from_interval"])


def test_each_interval_is_cleared_by_the_mechanism_its_parameters_fix(chain, tmp_path):
    """The mechanism is a market parameter, fixed per interval when its gate closes: the
    scheduler clears each interval by its own, the chain refuses a clearing by another one, and
    a change of mechanism after an interval's gate has closed leaves that interval as it was.
    Pay-as-bid, then zonal for a book with a renewable-only bid (the uniform auction cannot keep
    it apart, so the chain refuses such a bid in a uniform interval)."""
    k = chain.market_params().first_open_interval(now_ms(), 6_000)
    assert set_mechanism(chain, "pay-as-bid") <= k
    place_crossing_orders(chain, k)
    wait_for_gate(chain, k)
    assert chain.market_params(interval=k).mechanism == "pay-as-bid"
    # Interval k's gate has closed: zonal from k + 1 on, and k stays pay-as-bid.
    assert set_mechanism(chain, "zonal") == k + 1
    assert chain.market_params(interval=k).mechanism == "pay-as-bid"
    assert chain.market_params(interval=k + 1).mechanism == "zonal"
    seller, buyer = keypair(SELLER), keypair(BUYER)
    base = now_ms() * 10
    chain.place_orders_relayed(
        keypair("//Dave"),
        [
            sign_order(
                seller, chain.genesis_hash, OrderSpec(base, k + 1, "offer", 500, 35, source="solar")
            ),
            sign_order(
                seller,
                chain.genesis_hash,
                OrderSpec(base + 1, k + 1, "offer", 500, 30, source="grid_mix"),
            ),
            sign_order(
                buyer,
                chain.genesis_hash,
                OrderSpec(base + 2, k + 1, "bid", 700, 60, renewable_only=True),
            ),
        ],
    )
    submitter = keypair(SUBMITTER).ss58_address
    with pytest.raises(ChainError) as refused:
        chain.submit(
            keypair(SUBMITTER),
            "submit_clearing",
            Chain.clearing_params(k, "zonal", 0, [], [], 9, 9),
        )
    # Refused at registration, before any deposit is held: it costs only the fee.
    assert refused.value.name == "WrongMechanism"
    assert not [e for e in chain.events(refused.value.block_hash) if e.name == "ClearingRejected"]
    # A clearing that fails a check costs its submitter the runtime's deposit, burned: an empty
    # pay-as-bid clearing of a crossing book leaves gains from trade.
    deposit = int(chain.constant(PALLET, "ClearingDeposit"))
    with pytest.raises(ChainError) as rejected_by:
        chain.submit(
            keypair(SUBMITTER),
            "submit_clearing",
            Chain.clearing_params(k, "pay-as-bid", 0, [], [], 9, 9),
        )
    assert rejected_by.value.name == "NotEquilibrium"
    (rejected,) = [
        e for e in chain.events(rejected_by.value.block_hash) if e.name == "ClearingRejected"
    ]
    assert ss58(rejected.attributes["submitter"]) == submitter
    assert int(rejected.attributes["slashed"]) == deposit > 0
    assert int(rejected.attributes["page"]) == 0

    scheduler = Scheduler(DataDir(tmp_path), chain, keypair(SUBMITTER), start_interval=k)
    assert scheduler.clear_interval(k)["state"] == "committed"
    cleared = chain.clearing(k)
    assert (
        cleared.mechanism == "pay-as-bid" and cleared.volume_wh == 800 and cleared.zone_prices == []
    )
    assert {m.buyer_price for m in cleared.matches} == {70, 50}  # each bid pays its own limit
    wait_for_gate(chain, k + 1)
    assert scheduler.clear_interval(k + 1)["state"] == "committed"
    zonal = chain.clearing(k + 1)
    assert (
        zonal.mechanism == "zonal" and zonal.volume_wh == 500
    )  # only the solar offer may serve the bid
    assert {m.seller_price for m in zonal.matches} == {m.buyer_price for m in zonal.matches}
    # Back to uniform, where a renewable-only bid is refused with its own error.
    later = set_mechanism(chain, "uniform")
    with pytest.raises(ChainError) as refused:
        chain.submit(
            buyer,
            "place_order",
            {"spec": OrderSpec(base + 3, later, "bid", 100, 60, renewable_only=True).to_call_arg()},
        )
    assert refused.value.name == "RenewableOnlyUnderUniform"


def test_zones_trade_over_a_line_up_to_its_capacity(chain, tmp_path):
    """The chain knows the grid: the scheduler clears a zonal interval over the chain's lines,
    the line between the zones fills up to its capacity and no further, and the zone prices
    part by more than the line's fee only because the line is full (the congestion rent goes
    to the distributor with the fee). A grid change after the gate applies to later intervals
    only."""
    far_buyer = "//Guard/zone1-buyer"
    setup_participants(chain, [far_buyer], zone=1)
    chain.submit(
        keypair("//Alice"), "set_line", {"a": 0, "b": 1, "capacity_wh": 300, "fee_ticks": 5}
    )
    k = max(
        set_mechanism(chain, "zonal"), chain.market_params().first_open_interval(now_ms(), 4_000)
    )
    seller = keypair(SELLER)
    base = now_ms() * 10
    chain.place_orders_relayed(
        keypair("//Dave"),
        [
            sign_order(
                seller, chain.genesis_hash, OrderSpec(base, k, "offer", 800, 40, source="solar")
            ),
            sign_order(
                keypair(far_buyer), chain.genesis_hash, OrderSpec(base + 1, k, "bid", 600, 70, 1)
            ),
        ],
    )
    distributor = chain.query("EnergyTrading", "Distributor")
    before = chain.balance(distributor).free
    wait_for_gate(chain, k)
    # After the gate the operator removes the line: from a later interval on. The closed
    # interval keeps the grid it closed under, and is cleared over the line.
    receipt = chain.submit(keypair("//Alice"), "remove_line", {"a": 0, "b": 1})
    (removed,) = receipt.find(PALLET, "LineRemoved")
    assert int(removed.attributes["from_interval"]) > k
    assert chain.grid() == [] and chain.grid(interval=k) == [GridLine(0, 1, 300, 5)]
    scheduler = Scheduler(DataDir(tmp_path), chain, keypair(SUBMITTER), start_interval=k)
    assert scheduler.clear_interval(k)["state"] == "committed"
    cleared = chain.clearing(k)
    assert cleared.mechanism == "zonal" and cleared.volume_wh == 300  # the line's capacity
    prices = dict(cleared.zone_prices)
    assert prices[1] - prices[0] > 5  # congested: the spread is above the fee
    (match,) = cleared.matches
    assert (match.buyer_price, match.seller_price) == (prices[1], prices[0])
    assert chain.balance(distributor).free - before == (prices[1] - prices[0]) * 300


def test_catching_up_skips_long_past_empty_intervals(chain, tmp_path):
    """After downtime the scheduler does not spend a block on every empty interval it missed."""
    start = chain.born_in - 8  # long before this chain's first order
    scheduler = Scheduler(DataDir(tmp_path), chain, keypair(SUBMITTER), start_interval=start)
    nonce = chain.account_next_nonce(keypair(SUBMITTER).ss58_address)
    outcomes = [scheduler.step() for _ in range(5)]
    assert [o["state"] for o in outcomes] == ["skipped"] * 5
    assert [o["interval"] for o in outcomes] == list(range(start, start + 5))
    assert chain.account_next_nonce(keypair(SUBMITTER).ss58_address) == nonce  # nothing submitted


def closed_interval_in_pages(chain: Chain, tmp_path) -> tuple[int, DataDir, Scheduler]:
    """An interval with crossing orders whose gate has closed, and a scheduler that sends
    clearings in pages of one match (so this one in two pages)."""
    k = chain.market_params().first_open_interval(now_ms(), 4_000)
    place_crossing_orders(chain, k)
    wait_for_gate(chain, k)
    data = DataDir(tmp_path)
    return k, data, Scheduler(data, chain, keypair(SUBMITTER), start_interval=k, page_matches=1)


def test_a_clearing_in_pages_is_applied_after_its_last_page_and_survives_a_crash(
    chain, tmp_path, monkeypatch
):
    """With pages of one match, the scheduler registers the clearing and sends its two pages
    at once; it dies after signing (and logging) the second page but before the node saw it.
    Restarted, it broadcasts the very same extrinsics and follows them: the chain verifies
    page by page and applies the clearing once, after its last page."""
    k, data, scheduler = closed_interval_in_pages(chain, tmp_path)
    broadcast, sent = chain.broadcast, []

    def dies_at_the_second_page(tx):
        if tx.call.endswith("submit_clearing_page") and any(
            c.endswith("submit_clearing_page") for c in sent
        ):
            raise Crash(tx.tx_hash)
        sent.append(tx.call)
        return broadcast(tx)

    monkeypatch.setattr(chain, "broadcast", dies_at_the_second_page)
    with pytest.raises(Crash):
        scheduler.clear_interval(k)
    monkeypatch.undo()
    logged = [dict(r) for r in data.ops().execute("SELECT * FROM clearing_txs ORDER BY seq")]
    assert [r["call"] for r in logged] == [
        "register_clearing",
        "submit_clearing_page",
        "submit_clearing_page",
    ]
    assert scheduler.attempts(k)[-1]["state"] == "signed"

    restarted = Scheduler(data, chain, keypair(SUBMITTER), start_interval=k, page_matches=1)
    outcome = restarted.clear_interval(k)
    assert (outcome["state"], outcome["pages"]) == ("committed", 2)
    assert outcome["tx_hash"] == logged[-1]["tx_hash"]  # the last page applied it
    cleared = chain.clearing(k)
    assert (cleared.pages, cleared.match_count, len(cleared.matches)) == (2, 2, 2)
    assert cleared.volume_wh == 800
    # The pages were verified one by one, in order, and the clearing applied once.
    events = [
        e
        for n in range(outcome["block_number"] - 8, outcome["block_number"] + 1)
        for e in chain.events(chain.block_hash(n))
        if e.pallet == PALLET and int(e.attributes.get("interval", -1)) == k
    ]
    names = [e.name for e in events if e.name.startswith("Clearing")]
    assert names == [
        "ClearingRegistered",
        "ClearingPageVerified",
        "ClearingPageVerified",
        "ClearingAccepted",
    ]
    assert [int(e.attributes["page"]) for e in events if e.name == "ClearingPageVerified"] == [0, 1]


def test_a_dropped_page_is_sent_again_under_the_same_registration(chain, tmp_path, monkeypatch):
    """A node that restarts loses its pool: here the last page of a clearing in two pages
    never reaches it. Once that page is past its mortality (8 blocks here, so that it is known
    lost well before the interval's end), the scheduler finds its registration standing with
    page 0 verified and signs page 1 again: the clearing is applied under that registration,
    and no deposit is burned by a new one taking it over."""
    monkeypatch.setattr(scheduler_module, "CLEARING_ERA", 8)
    k, data, scheduler = closed_interval_in_pages(chain, tmp_path)
    broadcast, pages_sent = chain.broadcast, []

    def loses_the_second_page(tx):
        if tx.call.endswith("submit_clearing_page"):
            pages_sent.append(tx.tx_hash)
            if len(pages_sent) == 2:
                return tx  # the node never gets it
        return broadcast(tx)

    monkeypatch.setattr(chain, "broadcast", loses_the_second_page)
    outcome = scheduler.clear_interval(k)
    assert (outcome["state"], outcome["pages"]) == ("committed", 2), outcome
    assert len(pages_sent) == 3 and outcome["tx_hash"] == pages_sent[2]  # page 1, signed again
    logged = [dict(r) for r in data.ops().execute("SELECT * FROM clearing_txs ORDER BY seq")]
    assert [(r["seq"], r["call"]) for r in logged] == [
        (0, "register_clearing"),
        (1, "submit_clearing_page"),
        (2, "submit_clearing_page"),
    ]
    assert logged[2]["tx_hash"] == pages_sent[2]
    cleared = chain.clearing(k)
    assert (cleared.pages, cleared.match_count, cleared.volume_wh) == (2, 2, 800)
    names = [
        e.name
        for n in range(outcome["block_number"] - 15, outcome["block_number"] + 1)
        for e in chain.events(chain.block_hash(n))
        if e.pallet == PALLET
        and e.name.startswith("Clearing")
        and int(e.attributes.get("interval", -1)) == k
    ]
    assert names == [
        "ClearingRegistered",
        "ClearingPageVerified",
        "ClearingPageVerified",
        "ClearingAccepted",
    ]
