"""Shared helpers for the matcher tests: order builders, Hypothesis strategies, fill sums."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

SOURCES = ("solar", "wind", "hydro", "biomass", "grid_mix")


def orders_from(bids, offers, first_id=1):
    """bids/offers: lists of (price, quantity[, zone[, renewable_only or source]])."""
    orders = []
    next_id = first_id
    for side, rows in (("bid", bids), ("offer", offers)):
        for row in rows:
            order = {"id": next_id, "side": side, "price": row[0], "quantity_wh": row[1]}
            if len(row) > 2:
                order["zone"] = row[2]
            if len(row) > 3:
                if side == "bid":
                    order["renewable_only"] = bool(row[3])
                else:
                    order["source"] = row[3]
            orders.append(order)
            next_id += 1
    return orders


def fills(orders, clearing):
    """(bid fill by id, offer fill by id) from a Clearing."""
    bid_fill = {o["id"]: 0 for o in orders if o["side"] == "bid"}
    offer_fill = {o["id"]: 0 for o in orders if o["side"] == "offer"}
    for m in clearing.matches:
        bid_fill[m.bid] += m.quantity_wh
        offer_fill[m.offer] += m.quantity_wh
    return bid_fill, offer_fill


def line_flows(orders, clearing):
    """Wh moved from offer zone to bid zone, per ordered zone pair (a != b)."""
    zone = {o["id"]: o.get("zone", 0) for o in orders}
    flows = {}
    for m in clearing.matches:
        a, b = zone[m.offer], zone[m.bid]
        if a != b:
            flows[(a, b)] = flows.get((a, b), 0) + m.quantity_wh
    return flows


price = st.integers(min_value=0, max_value=30)
quantity = st.integers(min_value=1, max_value=20)
side_rows = st.lists(st.tuples(price, quantity), max_size=10)


@st.composite
def zonal_books(draw, zones=3, renewable=True, max_orders=8):
    bids = draw(
        st.lists(
            st.tuples(
                price,
                quantity,
                st.integers(0, zones - 1),
                st.booleans() if renewable else st.just(False),
            ),
            max_size=max_orders,
        )
    )
    offers = draw(
        st.lists(
            st.tuples(price, quantity, st.integers(0, zones - 1), st.sampled_from(SOURCES)),
            max_size=max_orders,
        )
    )
    return bids, offers


@st.composite
def networks(draw, zones=3, max_capacity=30, max_fee=4):
    lines = []
    for a in range(zones):
        for b in range(a + 1, zones):
            if draw(st.booleans()):
                lines.append(
                    {
                        "from": a,
                        "to": b,
                        "capacity_wh": draw(st.integers(0, max_capacity)),
                        "fee": draw(st.integers(0, max_fee)),
                    }
                )
    return {"zones": list(range(zones)), "lines": lines}


def as_arrays(rows):
    return (
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
    )


ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m matcher ARGS` from the checkout, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "matcher", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)
