"""Reference clearings for tests and the benchmark: the same tie rule and walk as the Cython
core, once vectorised with NumPy and once in plain Python. They must give identical matches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

Int64s: TypeAlias = npt.NDArray[np.int64]


def clear_numpy(
    bid_price: Int64s, bid_qty: Int64s, offer_price: Int64s, offer_qty: Int64s
) -> tuple[Int64s, Int64s, Int64s]:
    """Vectorised: stable argsorts, cumulative quantities, and the merged breakpoints of the two
    step curves; the matched segments are the prefix where the bid is at or above the offer.
    Returns (bid_index, offer_index, quantity_wh)."""
    bid_order = np.argsort(-bid_price, kind="stable")
    offer_order = np.argsort(offer_price, kind="stable")
    bid_end = np.cumsum(bid_qty[bid_order])
    offer_end = np.cumsum(offer_qty[offer_order])
    empty = np.zeros(0, np.int64)
    if len(bid_end) == 0 or len(offer_end) == 0:
        return empty, empty, empty
    ends = np.union1d(bid_end, offer_end)
    ends = ends[ends <= min(bid_end[-1], offer_end[-1])]
    begins = np.concatenate([[0], ends[:-1]])
    b = bid_order[np.searchsorted(bid_end, begins, side="right")]
    o = offer_order[np.searchsorted(offer_end, begins, side="right")]
    crossing = bid_price[b] >= offer_price[o]
    stop = len(crossing) if crossing.all() else int(np.argmin(crossing))
    return b[:stop], o[:stop], (ends - begins)[:stop]


def clear_python(
    bid_price: Sequence[int],
    bid_qty: Sequence[int],
    offer_price: Sequence[int],
    offer_qty: Sequence[int],
) -> tuple[list[int], list[int], list[int]]:
    """Plain Python lists and sorted(); slow, for small books and as the benchmark's baseline."""
    bids = sorted(range(len(bid_price)), key=lambda i: (-bid_price[i], i))
    offers = sorted(range(len(offer_price)), key=lambda j: (offer_price[j], j))
    out_b: list[int] = []
    out_o: list[int] = []
    out_q: list[int] = []
    i = j = 0
    left_b = bid_qty[bids[0]] if bids else 0
    left_o = offer_qty[offers[0]] if offers else 0
    while i < len(bids) and j < len(offers):
        b, o = bids[i], offers[j]
        if bid_price[b] < offer_price[o]:
            break
        q = min(left_b, left_o)
        out_b.append(b)
        out_o.append(o)
        out_q.append(q)
        left_b -= q
        left_o -= q
        if left_b == 0:
            i += 1
            if i < len(bids):
                left_b = bid_qty[bids[i]]
        if left_o == 0:
            j += 1
            if j < len(offers):
                left_o = offer_qty[offers[j]]
    return out_b, out_o, out_q


def max_welfare_by_units(
    bid_price: Sequence[int],
    bid_qty: Sequence[int],
    offer_price: Sequence[int],
    offer_qty: Sequence[int],
) -> int:
    """The largest possible welfare, by expanding every order into 1 Wh units: the k-th best
    bid unit trades with the k-th best offer unit while that gains. Only for tiny books."""
    bid_units = sorted((p for p, q in zip(bid_price, bid_qty) for _ in range(q)), reverse=True)
    offer_units = sorted(p for p, q in zip(offer_price, offer_qty) for _ in range(q))
    return sum(max(0, b - o) for b, o in zip(bid_units, offer_units))
