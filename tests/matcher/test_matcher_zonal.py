"""Zonal clearing: equal to uniform without constraints, optimal and valid with them, line
capacities, grid fees, renewable-only bids, determinism."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from matcher_testkit import fills, line_flows, networks, orders_from, side_rows, zonal_books
from ortools.linear_solver import pywraplp

from matcher import Network, book_from_orders, clear_orders, verify


def independent_lp_welfare(orders, network):
    """Welfare optimum of a per-(bid, offer) transport LP, built without the matcher's code."""
    net = Network.from_dict(network)
    solver = pywraplp.Solver.CreateSolver("GLOP")
    bids = [o for o in orders if o["side"] == "bid"]
    offers = [o for o in orders if o["side"] == "offer"]
    x = {}
    for b in bids:
        for o in offers:
            zb, zo = b.get("zone", 0), o.get("zone", 0)
            line = next((ln for ln in net.lines if {ln.from_zone, ln.to_zone} == {zb, zo}), None)
            if zb != zo and (line is None or line.capacity_wh == 0):
                continue
            if b.get("renewable_only") and o.get("source", "grid_mix") == "grid_mix":
                continue
            x[b["id"], o["id"]] = (solver.NumVar(0, solver.infinity(), ""), b, o, net.fee(zo, zb))
    for group, key in ((bids, 0), (offers, 1)):
        for order in group:
            terms = [v[0] for k, v in x.items() if k[key] == order["id"]]
            if terms:
                solver.Add(sum(terms) <= order["quantity_wh"])
    for line in net.lines:
        for a, b in ((line.from_zone, line.to_zone), (line.to_zone, line.from_zone)):
            terms = [
                v[0] for v in x.values() if v[2].get("zone", 0) == a and v[1].get("zone", 0) == b
            ]
            if terms:
                solver.Add(sum(terms) <= line.capacity_wh)
    solver.Maximize(sum(v[0] * (v[1]["price"] - v[2]["price"] - v[3]) for v in x.values()))
    assert solver.Solve() == pywraplp.Solver.OPTIMAL
    return solver.Objective().Value()


def check_zonal(orders, network, clearing):
    """Everything the chain checks, plus line capacities and trades only over lines."""
    net = Network.from_dict(network)
    violations = verify(book_from_orders(orders), clearing.to_json_dict(), net)
    # The fallback (a book with no zonal equilibrium) may leave a spread above a fee on a
    # line with room, which the chain refuses (below); nothing else.
    if clearing.fallback:
        violations = [v for v in violations if v.condition != "spread"]
    assert violations == []
    capacity = {}
    for line in net.lines:
        capacity[(line.from_zone, line.to_zone)] = capacity[(line.to_zone, line.from_zone)] = (
            line.capacity_wh
        )
    flows = line_flows(orders, clearing)
    for pair, wh in flows.items():
        assert pair in capacity, f"trade between {pair} without a line"
        assert wh <= capacity[pair]
    # Congestion rent only on a full line: prices across a line with room left toward the
    # dearer zone differ by at most its fee (the chain's SpreadWithoutCongestion). The fallback
    # (a book with no zonal equilibrium) does not always manage it: the chain refuses such a
    # clearing and the interval is voided.
    prices = clearing.zone_prices
    for line in net.lines if not clearing.fallback else ():
        a, b = line.from_zone, line.to_zone
        if a not in prices or b not in prices:
            continue
        toward_b = flows.get((a, b), 0) - flows.get((b, a), 0)
        if prices[b] - prices[a] > line.fee:
            assert toward_b == line.capacity_wh, f"rent on line {a}-{b} with room"
        if prices[a] - prices[b] > line.fee:
            assert -toward_b == line.capacity_wh, f"rent on line {a}-{b} with room"


@settings(max_examples=80, deadline=None)
@given(side_rows, side_rows)
def test_single_zone_zonal_equals_uniform(bids, offers):
    orders = orders_from(bids, offers)
    uniform = clear_orders(orders).to_json_dict()
    zonal = clear_orders(orders, mechanism="zonal", network={"zones": [0]}).to_json_dict()
    assert zonal["zone_prices"] == ({"0": uniform["price"]} if orders else {})
    for key in ("volume_wh", "welfare", "matches"):
        assert zonal[key] == uniform[key]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=2, max_size=16, unique=True), st.data())
def test_uncongested_fee_free_network_equals_uniform(prices, data):
    half = len(prices) // 2
    quantity = st.integers(1, 20)
    zone = st.integers(0, 3)
    bids = [(p, data.draw(quantity), data.draw(zone)) for p in prices[:half]]
    offers = [(p, data.draw(quantity), data.draw(zone), "grid_mix") for p in prices[half:]]
    orders = orders_from(bids, offers)
    network = {
        "zones": [0, 1, 2, 3],
        "lines": [
            {"from": 0, "to": 1, "capacity_wh": 10**6, "fee": 0},
            {"from": 1, "to": 2, "capacity_wh": 10**6, "fee": 0},
            {"from": 0, "to": 2, "capacity_wh": 10**6, "fee": 0},
            {"from": 2, "to": 3, "capacity_wh": 10**6, "fee": 0},
            {"from": 0, "to": 3, "capacity_wh": 10**6, "fee": 0},
            {"from": 1, "to": 3, "capacity_wh": 10**6, "fee": 0},
        ],
    }
    uniform = clear_orders(orders)
    zonal = clear_orders(orders, mechanism="zonal", network=network)
    assert (zonal.volume_wh, zonal.welfare) == (uniform.volume_wh, uniform.welfare)
    assert set(zonal.zone_prices.values()) == {uniform.price}
    assert fills(orders, zonal) == fills(orders, uniform)  # distinct prices: the fills are unique
    check_zonal(orders, network, zonal)


@settings(max_examples=120, deadline=None)
@given(zonal_books(renewable=False), networks())
def test_zonal_is_optimal_and_valid_without_preferences(book, network):
    orders = orders_from(*book)
    clearing = clear_orders(orders, mechanism="zonal", network=network)
    check_zonal(orders, network, clearing)
    bound = independent_lp_welfare(orders, network)
    assert clearing.welfare <= bound + 1e-6
    if not clearing.fallback:
        assert clearing.welfare == round(bound)


def test_a_zone_that_sells_out_and_buys_in_cannot_have_one_price():
    # Zone 1 sells its offer (21) to zone 0 and its bid (12) buys from zone 2: the LP optimum
    # needs a seller price >= 21 and a buyer price <= 12 in zone 1. The fallback keeps every
    # rule but one: its prices differ across line 1-2, which has room, by more than the fee,
    # so the chain would refuse it, and the scheduler's check keeps it from being submitted.
    orders = [
        {"id": 0, "side": "bid", "quantity_wh": 39, "price": 40, "zone": 0},
        {"id": 1, "side": "offer", "quantity_wh": 12, "price": 37, "zone": 2, "source": "solar"},
        {"id": 2, "side": "bid", "quantity_wh": 38, "price": 12, "zone": 1},
        {"id": 3, "side": "offer", "quantity_wh": 26, "price": 21, "zone": 1},
        {"id": 4, "side": "offer", "quantity_wh": 25, "price": 4, "zone": 2, "source": "wind"},
    ]
    network = {
        "zones": [0, 1, 2],
        "lines": [
            {"from": 0, "to": 1, "capacity_wh": 38, "fee": 0},
            {"from": 1, "to": 2, "capacity_wh": 51, "fee": 4},
        ],
    }
    clearing = clear_orders(orders, mechanism="zonal", network=network)
    check_zonal(orders, network, clearing)
    assert clearing.fallback is True and clearing.to_json_dict()["fallback"] is True
    assert independent_lp_welfare(orders, network) == 594
    assert clearing.welfare == 494  # zone 0 buys zone 1's offer; zone 1's bid goes without
    assert [
        v.condition
        for v in verify(
            book_from_orders(orders), clearing.to_json_dict(), Network.from_dict(network)
        )
    ] == ["spread"]


@settings(max_examples=300, deadline=None)
@given(zonal_books(zones=4, renewable=True, max_orders=12), networks(zones=4))
def test_zonal_with_renewable_only_bids_always_passes_the_chain_checks(book, network):
    orders = orders_from(*book)
    clearing = clear_orders(orders, mechanism="zonal", network=network)
    check_zonal(orders, network, clearing)
    assert clearing.welfare <= independent_lp_welfare(orders, network) + 1e-6
    shuffled = list(orders)
    random.Random(7).shuffle(shuffled)
    assert (
        clear_orders(shuffled, mechanism="zonal", network=network).to_json() == clearing.to_json()
    )
    paid_as_bid = clear_orders(orders, mechanism="pay-as-bid", network=network)
    assert (
        verify(book_from_orders(orders), paid_as_bid.to_json_dict(), Network.from_dict(network))
        == []
    )


def test_line_capacity_binds_and_splits_prices():
    orders = orders_from([(90, 50, 1)], [(20, 50, 0, "grid_mix"), (70, 50, 1, "grid_mix")])
    network = {"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": 10, "fee": 3}]}
    c = clear_orders(orders, mechanism="zonal", network=network)
    assert line_flows(orders, c) == {(0, 1): 10}
    assert c.volume_wh == 50
    assert c.welfare == 10 * (90 - 20 - 3) + 40 * (90 - 70)
    assert c.zone_prices[1] - c.zone_prices[0] >= 3  # fee plus congestion rent
    check_zonal(orders, network, c)


def test_an_uncongested_line_carries_the_fee_and_no_rent():
    orders = orders_from([(70, 600, 1)], [(40, 800, 0, "solar")])
    network = {"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": 1_000, "fee": 5}]}
    c = clear_orders(orders, mechanism="zonal", network=network)
    assert c.volume_wh == 600 and line_flows(orders, c) == {(0, 1): 600}
    assert c.zone_prices[1] - c.zone_prices[0] == 5  # the fee, and no more: the line has room
    check_zonal(orders, network, c)


def test_fee_above_the_spread_stops_trade_between_zones():
    orders = orders_from([(50, 10, 1)], [(45, 10, 0, "solar")])
    network = {"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": 100, "fee": 6}]}
    c = clear_orders(orders, mechanism="zonal", network=network)
    assert c.volume_wh == 0
    check_zonal(orders, network, c)


def test_zones_without_a_line_do_not_trade():
    orders = orders_from([(90, 10, 1)], [(10, 10, 0, "wind")])
    c = clear_orders(orders, mechanism="zonal", network={"zones": [0, 1], "lines": []})
    assert c.volume_wh == 0 and c.matches == []


def test_renewable_only_bid_is_matched_with_renewable_offers_only():
    # Grid energy is cheaper, but bid 1 takes only solar; bid 2 takes the grid energy.
    orders = orders_from(
        [(80, 10, 0, True), (80, 10, 0, False)], [(10, 10, 0, "grid_mix"), (30, 10, 0, "solar")]
    )
    c = clear_orders(orders, mechanism="zonal")
    assert sorted((m.bid, m.offer, m.quantity_wh) for m in c.matches) == [(1, 4, 10), (2, 3, 10)]
    check_zonal(orders, {"zones": [0], "lines": []}, c)


def test_scarce_renewable_energy_falls_back_to_one_price_per_zone():
    # The welfare optimum would ship solar 0 -> 1 and grid energy 1 -> 0 at once, which one
    # price per zone cannot support; the fallback gives up the renewable-only bid.
    orders = [
        {"id": 1, "side": "bid", "quantity_wh": 100, "price": 60, "zone": 0},
        {"id": 2, "side": "bid", "quantity_wh": 50, "price": 55, "zone": 1, "renewable_only": True},
        {"id": 3, "side": "offer", "quantity_wh": 80, "price": 40, "zone": 0, "source": "solar"},
        {"id": 4, "side": "offer", "quantity_wh": 100, "price": 50, "zone": 1},
        {"id": 5, "side": "bid", "quantity_wh": 30, "price": 45, "zone": 1},
    ]
    network = {"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": 30, "fee": 2}]}
    c = clear_orders(orders, mechanism="zonal", network=network)
    check_zonal(orders, network, c)
    assert c.welfare == 1760 and c.zone_prices == {0: 57, 1: 55} and c.fallback
    assert independent_lp_welfare(orders, network) == 1770  # two prices per zone would do better


def test_huge_order_zonal_is_exact():
    huge = 10**15
    orders = orders_from([(900, huge, 1)], [(100, huge, 0, "hydro")])
    network = {"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": huge - 1, "fee": 1}]}
    c = clear_orders(orders, mechanism="zonal", network=network)
    assert c.volume_wh == huge - 1 and c.welfare == (huge - 1) * 799
    check_zonal(orders, network, c)


def test_pay_as_bid_on_a_network_charges_the_fee_to_the_seller():
    orders = orders_from([(90, 10, 1)], [(20, 10, 0, "wind")])
    network = {"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": 100, "fee": 5}]}
    c = clear_orders(orders, mechanism="pay-as-bid", network=network)
    assert [(m.buyer_price, m.seller_price, m.quantity_wh) for m in c.matches] == [(90, 85, 10)]
    assert verify(book_from_orders(orders), c.to_json_dict(), Network.from_dict(network)) == []


def test_network_format_errors():
    import pytest

    from matcher import NetworkError

    for bad, message in [
        ({"zones": []}, "non-empty list"),
        ({"zones": [0, 0]}, "listed twice"),
        (
            {"zones": [0, 1], "lines": [{"from": 0, "to": 0, "capacity_wh": 1}]},
            "two different zones",
        ),
        ({"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": -1}]}, "capacity_wh"),
        ({"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": 1, "fee": 1.5}]}, "fee"),
        (
            {
                "zones": [0, 1],
                "lines": [
                    {"from": 0, "to": 1, "capacity_wh": 1},
                    {"from": 1, "to": 0, "capacity_wh": 1},
                ],
            },
            "already have a line",
        ),
    ]:
        with pytest.raises(NetworkError, match=message):
            Network.from_dict(bad)


def test_price_leaves_the_gap_of_an_unserved_renewable_only_bid():
    # Only grid energy (25) is offered: the renewable-only bid (29) stays unfilled above it, so
    # the zone price must not lie strictly between 25 and 29. Bid 2 (27) bounds it from above,
    # so the price goes to the low side of the gap.
    orders = [
        {"id": 0, "side": "bid", "quantity_wh": 35, "price": 29, "renewable_only": True},
        {"id": 1, "side": "offer", "quantity_wh": 35, "price": 25},
        {"id": 2, "side": "bid", "quantity_wh": 5, "price": 27},
    ]
    c = clear_orders(orders, mechanism="zonal")
    check_zonal(orders, {"zones": [0], "lines": []}, c)
    assert c.zone_prices == {0: 25} and not c.fallback
    assert [(m.bid, m.offer, m.quantity_wh) for m in c.matches] == [(2, 1, 5)]
