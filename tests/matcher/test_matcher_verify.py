"""verify names each condition the pallet checks when a clearing breaks it."""

import copy

import pytest
from matcher_testkit import orders_from

from matcher import Network, book_from_orders, clear_orders, verify

# Bids 1 (60), 2 (50, zone 1, renewable-only); offers 3 (40, solar, 20 Wh),
# 4 (45, grid_mix, zone 1): bid 2 can only buy zone 0's solar energy, over the line.
ORDERS = orders_from(
    [(60, 10, 0, False), (50, 10, 1, True)], [(40, 20, 0, "solar"), (45, 10, 1, "grid_mix")]
)
NETWORK = {"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": 100, "fee": 2}]}
BOOK = book_from_orders(ORDERS)
NET = Network.from_dict(NETWORK)
UNIFORM_ORDERS = orders_from([(60, 10), (50, 10)], [(40, 10), (45, 10)])
UNIFORM_BOOK = book_from_orders(UNIFORM_ORDERS)


def conditions(book, clearing, network=None):
    return {v.condition for v in verify(book, clearing, network)}


@pytest.fixture
def uniform():
    return clear_orders(UNIFORM_ORDERS).to_json_dict()


@pytest.fixture
def zonal():
    data = clear_orders(ORDERS, mechanism="zonal", network=NETWORK).to_json_dict()
    assert verify(BOOK, data, NET) == []
    return data


def test_valid_clearings_pass(uniform):
    assert verify(UNIFORM_BOOK, uniform) == []
    assert (
        verify(UNIFORM_BOOK, clear_orders(UNIFORM_ORDERS, mechanism="pay-as-bid").to_json_dict())
        == []
    )


def test_bid_limit_and_offer_limit(uniform):
    bad = copy.deepcopy(uniform)
    bad["price"] = 70
    for m in bad["matches"]:
        m["buyer_price"] = m["seller_price"] = 70
    assert conditions(UNIFORM_BOOK, bad) == {"bid_limit"}
    bad["price"] = 30
    for m in bad["matches"]:
        m["buyer_price"] = m["seller_price"] = 30
    found = verify(UNIFORM_BOOK, bad)
    assert {v.condition for v in found} == {"offer_limit"}
    assert "offer 3" in str(found[0]) and "seller_price 30 < offer limit 40" in str(found[0])


def test_uniform_price_must_be_one_price(uniform):
    bad = copy.deepcopy(uniform)
    bad["matches"][0]["buyer_price"] += 1
    assert conditions(UNIFORM_BOOK, bad) == {"uniform_price"}
    bad = copy.deepcopy(uniform)
    bad["price"] = None
    assert "uniform_price" in conditions(UNIFORM_BOOK, bad)


def test_equilibrium_no_unfilled_bid_above_while_offer_below(uniform):
    bad = copy.deepcopy(uniform)
    removed = bad["matches"].pop()
    bad["volume_wh"] -= removed["quantity_wh"]
    found = verify(UNIFORM_BOOK, bad)
    assert [v.condition for v in found] == ["equilibrium"]
    assert f"unfilled bid {removed['bid']}" in found[0].message
    assert f"unfilled offer {removed['offer']}" in found[0].message


def test_overfill_volume_and_quantity(uniform):
    bad = copy.deepcopy(uniform)
    bad["matches"].append(dict(bad["matches"][0]))
    assert conditions(UNIFORM_BOOK, bad) == {"overfill", "volume"}
    bad = copy.deepcopy(uniform)
    bad["volume_wh"] += 1
    assert conditions(UNIFORM_BOOK, bad) == {"volume"}
    bad = copy.deepcopy(uniform)
    bad["matches"].append(dict(bad["matches"][0], quantity_wh=0))
    assert conditions(UNIFORM_BOOK, bad) == {"quantity"}


def test_unknown_orders_and_wrong_sides(uniform):
    bad = copy.deepcopy(uniform)
    bad["matches"][0]["bid"] = 999
    found = verify(UNIFORM_BOOK, bad)
    assert "unknown_order" in {v.condition for v in found}
    assert "bid 999 is not a bid of this interval" in str(found)
    bad = copy.deepcopy(uniform)
    bad["matches"][0]["bid"], bad["matches"][0]["offer"] = (
        bad["matches"][0]["offer"],
        bad["matches"][0]["bid"],
    )
    assert "(it is an offer)" in str(verify(UNIFORM_BOOK, bad))


def test_format_and_mechanism(uniform):
    assert conditions(UNIFORM_BOOK, dict(uniform, mechanism="vickrey")) == {"mechanism"}
    assert conditions(UNIFORM_BOOK, dict(uniform, matches="none")) == {"format"}
    bad = copy.deepcopy(uniform)
    bad["matches"][0]["quantity_wh"] = -1
    assert "format" in conditions(UNIFORM_BOOK, bad)


def test_pay_as_bid_prices():
    data = clear_orders(ORDERS, mechanism="pay-as-bid", network=NETWORK).to_json_dict()
    assert verify(BOOK, data, NET) == []
    bad = copy.deepcopy(data)
    bad["matches"][0]["buyer_price"] -= 1
    assert "pay_as_bid_price" in conditions(BOOK, bad, NET)
    bad = copy.deepcopy(data)
    bad["matches"][0]["seller_price"] -= 1  # the seller must get exactly buyer_price - fee
    assert conditions(BOOK, bad, NET) == {"pay_as_bid_price"}


def test_grid_fee(zonal):
    cross = [m for m in zonal["matches"] if m["buyer_price"] != m["seller_price"]]
    assert cross, "the fixture trades across the line"
    assert zonal["zone_prices"] == {"0": 48, "1": 50}
    bad = copy.deepcopy(zonal)
    bad["zone_prices"] = {"0": 49, "1": 50}  # a difference of 1 < fee 2
    by_zone = {o["id"]: o.get("zone", 0) for o in ORDERS}
    for m in bad["matches"]:
        m["buyer_price"] = bad["zone_prices"][str(by_zone[m["bid"]])]
        m["seller_price"] = bad["zone_prices"][str(by_zone[m["offer"]])]
    found = verify(BOOK, bad, NET)
    assert [v.condition for v in found] == ["grid_fee"]
    assert (
        "bid 2, offer 3: buyer_price - seller_price = 1 < fee 2 (zone 0 -> 1)" in found[0].message
    )


def test_renewable_only():
    # Bid 2 (renewable-only, zone 1) matched with the grid_mix offer 4 of its own zone.
    data = {
        "mechanism": "zonal",
        "price": None,
        "zone_prices": {"0": 50, "1": 50},
        "volume_wh": 10,
        "welfare": 50,
        "matches": [
            {"bid": 2, "offer": 4, "quantity_wh": 10, "buyer_price": 50, "seller_price": 50}
        ],
    }
    found = verify(BOOK, data, NET)
    assert "renewable_only" in {v.condition for v in found}
    assert "bid 2, offer 4: renewable-only bid matched with a grid_mix offer" in str(found)


def test_zone_prices(zonal):
    bad = copy.deepcopy(zonal)
    bad["zone_prices"].pop("1")
    assert "zone_prices" in conditions(BOOK, bad, NET)
    bad = copy.deepcopy(zonal)
    bad["zone_prices"]["0"] += 1
    assert "zone_price" in conditions(BOOK, bad, NET)


def test_zonal_equilibrium_is_per_zone():
    orders = orders_from([(60, 10, 0), (60, 10, 1)], [(40, 10, 0, "wind"), (40, 10, 1, "wind")])
    book = book_from_orders(orders)
    data = clear_orders(
        orders, mechanism="zonal", network={"zones": [0, 1], "lines": []}
    ).to_json_dict()
    assert verify(book, data) == []
    data["matches"] = [m for m in data["matches"] if m["bid"] != 2]
    data["volume_wh"] = sum(m["quantity_wh"] for m in data["matches"])
    found = verify(book, data)
    assert [v.condition for v in found] == ["equilibrium"] and "in zone 1" in found[0].message


def test_a_match_between_zones_needs_a_line_within_its_capacity(zonal):
    # The fixture moves bid 2's 10 Wh from zone 0 to zone 1 over the line (capacity 100).
    without_line = Network.from_dict({"zones": [0, 1], "lines": []})
    found = verify(BOOK, zonal, without_line)
    assert [v.condition for v in found] == ["no_line"]
    assert "bid 2, offer 3: no line joins zone 0 to 1" in found[0].message
    narrow = Network.from_dict(
        {"zones": [0, 1], "lines": [{"from": 1, "to": 0, "capacity_wh": 9, "fee": 2}]}
    )
    found = verify(BOOK, zonal, narrow)
    assert [v.condition for v in found] == ["line_capacity"]
    assert "line 0-1: 10 Wh net from zone 0 to 1, capacity 9 Wh" in found[0].message


def test_a_spread_above_the_fee_needs_a_full_line(zonal):
    # Prices 48 and 50 across a line of fee 2: fine. Wider, with room left: congestion rent
    # without congestion, which the chain refuses.
    bad = copy.deepcopy(zonal)
    bad["zone_prices"] = {"0": 45, "1": 50}
    by_zone = {o["id"]: o.get("zone", 0) for o in ORDERS}
    for m in bad["matches"]:
        m["buyer_price"] = bad["zone_prices"][str(by_zone[m["bid"]])]
        m["seller_price"] = bad["zone_prices"][str(by_zone[m["offer"]])]
    assert "spread" in conditions(BOOK, bad, NET)
    full = Network.from_dict(
        {"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": 10, "fee": 2}]}
    )
    assert "spread" not in conditions(BOOK, bad, full)


def test_a_uniform_clearing_with_no_trade_needs_no_price_only_a_book_that_does_not_cross():
    none = {"mechanism": "uniform", "price": None, "volume_wh": 0, "welfare": 0, "matches": []}
    apart = book_from_orders(orders_from([(40, 10)], [(45, 10)]))
    assert verify(apart, none) == [] == verify(apart, clear_orders(apart).to_json_dict())
    found = verify(UNIFORM_BOOK, none)
    assert [v.condition for v in found] == ["equilibrium"]
    assert "no trade, but bid 1 (limit 60) reaches offer 3 (limit 40)" in found[0].message
