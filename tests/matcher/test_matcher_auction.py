"""Uniform-price and pay-as-bid clearing: properties against slow references, and edge cases."""

import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from matcher_testkit import as_arrays, fills, orders_from, side_rows

from matcher import Book, OrderError, clear_arrays, clear_orders, verify
from matcher.reference import clear_numpy, clear_python, max_welfare_by_units


@settings(max_examples=300, deadline=None)
@given(side_rows, side_rows)
def test_uniform_properties_against_references(bids, offers):
    orders = orders_from(bids, offers)
    clearing = clear_orders(orders)
    p = clearing.price
    bid_fill, offer_fill = fills(orders, clearing)
    by_id = {o["id"]: o for o in orders}
    # Feasible: positive matches, fills within quantities, volume adds up.
    assert all(m.quantity_wh > 0 for m in clearing.matches)
    assert all(bid_fill[i] <= by_id[i]["quantity_wh"] for i in bid_fill)
    assert all(offer_fill[i] <= by_id[i]["quantity_wh"] for i in offer_fill)
    assert clearing.volume_wh == sum(m.quantity_wh for m in clearing.matches)
    # Limits respected at the one price.
    for m in clearing.matches:
        assert m.buyer_price == m.seller_price == p
        assert by_id[m.bid]["price"] >= p >= by_id[m.offer]["price"]
    # Maximal welfare, by an independent unit-by-unit computation.
    bp, bq = zip(*bids) if bids else ((), ())
    op, oq = zip(*offers) if offers else ((), ())
    assert clearing.welfare == max_welfare_by_units(bp, bq, op, oq)
    assert clearing.welfare == sum(
        (by_id[m.bid]["price"] - by_id[m.offer]["price"]) * m.quantity_wh for m in clearing.matches
    )
    # No gains from trade left: no unfilled bid above any unfilled offer, and none across the price.
    open_bids = [by_id[i]["price"] for i in bid_fill if bid_fill[i] < by_id[i]["quantity_wh"]]
    open_offers = [by_id[i]["price"] for i in offer_fill if offer_fill[i] < by_id[i]["quantity_wh"]]
    if open_bids and open_offers:
        assert max(open_bids) < min(open_offers)
    assert not any(b > p for b in open_bids) or not any(o < p for o in open_offers)
    assert (
        verify(Book.from_orders(enumerate(map(_order, orders), 1)), clearing.to_json_dict()) == []
    )
    # Byte-identical on a rerun and whatever the order of the input list.
    shuffled = list(orders)
    random.Random(len(orders)).shuffle(shuffled)
    assert clear_orders(shuffled).to_json() == clearing.to_json()


def _order(d):
    from matcher import Order

    return Order(
        d["id"],
        d["side"],
        d["quantity_wh"],
        d["price"],
        d.get("zone", 0),
        d.get("source", "grid_mix"),
        d.get("renewable_only", False),
    )


@settings(max_examples=200, deadline=None)
@given(side_rows, side_rows)
def test_cython_numpy_and_python_walks_agree(bids, offers):
    bp, bq = as_arrays(bids)
    op, oq = as_arrays(offers)
    result = clear_arrays(bp, bq, op, oq)
    for ours, numpy_ref, python_ref in zip(
        (result.bid_index, result.offer_index, result.quantity_wh),
        clear_numpy(bp, bq, op, oq),
        clear_python(bp.tolist(), bq.tolist(), op.tolist(), oq.tolist()),
    ):
        assert ours.tolist() == list(numpy_ref) == list(python_ref)


@settings(max_examples=150, deadline=None)
@given(side_rows, side_rows)
def test_pay_as_bid_prices_each_match_at_the_bid(bids, offers):
    orders = orders_from(bids, offers)
    clearing = clear_orders(orders, mechanism="pay-as-bid")
    uniform = clear_orders(orders)
    by_id = {o["id"]: o for o in orders}
    assert clearing.price is None
    assert [(m.bid, m.offer, m.quantity_wh) for m in clearing.matches] == [
        (m.bid, m.offer, m.quantity_wh) for m in uniform.matches
    ]
    for m in clearing.matches:
        assert m.buyer_price == m.seller_price == by_id[m.bid]["price"] >= by_id[m.offer]["price"]
    assert (
        verify(Book.from_orders(enumerate(map(_order, orders), 1)), clearing.to_json_dict()) == []
    )


def test_price_is_midpoint_of_equilibrium_interval_rounded_down():
    # Matched: bid 100 with offer 10; next bid 40 < next offer 60: interval [40, 60].
    c = clear_orders(orders_from([(100, 5), (40, 5)], [(10, 5), (60, 5)]))
    assert (c.price, c.volume_wh) == (50, 5)
    # Interval [40, 61] -> 50 (floor of 50.5).
    assert clear_orders(orders_from([(100, 5), (40, 5)], [(10, 5), (61, 5)])).price == 50
    # A partly filled marginal bid sets the price: interval [70, 70].
    c = clear_orders(orders_from([(70, 10)], [(10, 4), (20, 3)]))
    assert (c.price, c.volume_wh) == (70, 7)
    # A partly filled marginal offer sets it from below.
    assert clear_orders(orders_from([(90, 3)], [(30, 10)])).price == 30


def test_empty_sides_and_no_crossing():
    assert clear_orders([]).to_json_dict() == {
        "mechanism": "uniform",
        "price": 0,
        "zone_prices": None,
        "volume_wh": 0,
        "welfare": 0,
        "matches": [],
    }
    only_bids = clear_orders(orders_from([(40, 5), (55, 1)], []))
    assert (only_bids.price, only_bids.volume_wh, only_bids.matches) == (55, 0, [])
    only_offers = clear_orders(orders_from([], [(40, 5), (35, 1)]))
    assert (only_offers.price, only_offers.volume_wh) == (35, 0)
    apart = clear_orders(orders_from([(30, 5), (20, 5)], [(41, 5), (50, 5)]))
    assert (apart.price, apart.volume_wh, apart.welfare) == (35, 0, 0)


def test_all_prices_equal_and_heavy_ties_follow_ids():
    orders = orders_from([(50, 3)] * 4, [(50, 2)] * 5)  # bids ids 1-4, offers ids 5-9
    c = clear_orders(orders)
    assert c.price == 50 and c.volume_wh == 10 and c.welfare == 0
    assert [(m.bid, m.offer, m.quantity_wh) for m in c.matches] == [
        (1, 5, 2),
        (1, 6, 1),
        (2, 6, 1),
        (2, 7, 2),
        (3, 8, 2),
        (3, 9, 1),
        (4, 9, 1),
    ]
    # Ties are broken by id, not by position in the input.
    reversed_ids = [dict(o, id=100 - o["id"]) for o in orders]
    c2 = clear_orders(reversed_ids)
    assert [m.bid for m in c2.matches][0] == 96  # the lowest bid id, 100 - 4


def test_one_huge_order_is_exact():
    huge = 10**15
    c = clear_orders(orders_from([(900, huge)], [(100, 7), (800, huge - 3)]))
    assert c.volume_wh == huge
    assert c.welfare == 800 * 7 + 100 * (huge - 7)  # past 2**53: exact integers, no float
    assert [m.quantity_wh for m in c.matches] == [7, huge - 7]


def test_totals_past_int64_are_refused():
    with pytest.raises(OverflowError):
        clear_arrays(np.array([5, 5]), np.array([2**62, 2**62]), np.array([1]), np.array([1]))


def test_wide_price_range_uses_the_two_array_radix_sort():
    rng = np.random.default_rng(7)
    n = 5000
    bp, op = rng.integers(0, 2**62, n), rng.integers(0, 2**62, n)
    bp[::7] = bp[0]  # ties among wide keys
    bq, oq = rng.integers(1, 100, n), rng.integers(1, 100, n)
    ours = clear_arrays(bp, bq, op, oq)
    ref = clear_numpy(bp, bq, op, oq)
    assert (
        ours.bid_index.tolist() == ref[0].tolist() and ours.quantity_wh.tolist() == ref[2].tolist()
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"quantity_wh": 0}, "order 1: quantity_wh must be a positive integer, got 0"),
        ({"quantity_wh": -5}, "order 1: quantity_wh must be a positive integer, got -5"),
        ({"quantity_wh": 1.5}, "order 1: quantity_wh must be an integer"),
        ({"price": -1}, "order 1: price must be between 0 and"),
        ({"side": "ask"}, "order 1: unknown side 'ask'"),
    ],
)
def test_bad_api_orders_are_rejected(bad, message):
    order = dict({"id": 1, "side": "bid", "quantity_wh": 10, "price": 50}, **bad)
    with pytest.raises(OrderError, match=message):
        clear_orders([order, {"id": 2, "side": "offer", "quantity_wh": 10, "price": 40}])


def test_clear_arrays_validation():
    ok = np.array([1, 2])
    with pytest.raises(ValueError, match=r"bid_qty\[1\] = 0: quantities must be positive"):
        clear_arrays(ok, np.array([3, 0]), ok, ok)
    with pytest.raises(ValueError, match=r"offer_qty\[0\] = -4"):
        clear_arrays(ok, ok, ok, np.array([-4, 1]))
    with pytest.raises(TypeError, match="expected integers"):
        clear_arrays(np.array([1.5, 2.0]), ok, ok, ok)
    with pytest.raises(ValueError, match="has 2 entries"):
        clear_arrays(ok, np.array([1, 2, 3]), ok, ok)


def test_clear_arrays_result_shape():
    r = clear_arrays(np.array([60, 50]), np.array([10, 10]), np.array([40, 55]), np.array([15, 5]))
    assert (r.price, r.volume_wh, r.welfare) == (50, 15, 20 * 10 + 10 * 5)
    assert r.bid_index.tolist() == [0, 1] and r.offer_index.tolist() == [0, 0]
    assert r.quantity_wh.tolist() == [10, 5] and r.buyer_price.tolist() == [50, 50]
    assert r.bid_index.dtype == np.int64


def test_uniform_refuses_renewable_only_and_networks():
    orders = orders_from([(50, 5, 0, True)], [(40, 5, 0, "solar")])
    with pytest.raises(OrderError, match="order 1: a renewable_only bid needs mechanism 'zonal'"):
        clear_orders(orders)
    with pytest.raises(ValueError, match="use mechanism 'zonal'"):
        clear_orders(orders_from([(50, 5)], [(40, 5)]), network={"zones": [0]})
    with pytest.raises(ValueError, match="unknown mechanism"):
        clear_orders([], mechanism="dutch")


def test_json_is_canonical():
    c = clear_orders(orders_from([(60, 10), (50, 10)], [(40, 15)]))
    text = c.to_json()
    assert json.loads(text) == c.to_json_dict()
    assert text == clear_orders(orders_from([(60, 10), (50, 10)], [(40, 15)])).to_json()
    assert text.startswith('{"mechanism":"uniform","price":50,')
