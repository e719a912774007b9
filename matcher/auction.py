"""Uniform-price (pay-as-clear) and pay-as-bid double auction on one undifferentiated pool,
on top of the Cython core (`_auction`): O(N log N) for the radix sorts, linear match walk.

Tie rule: bids by price descending, offers by price ascending; equal prices by input index
(clear_arrays) or order id (clear_orders), lower first. The walk pairs the best remaining bid
with the best remaining offer while bid limit >= offer limit, each match as large as the
smaller of the two remainders, so the volume and welfare are the largest possible.

Price rule (uniform): the walk leaves an interval [lo, hi] of prices at which every matched
order is in the money and no order with quantity left would trade:
lo = max(last matched offer's limit, best unfilled bid's limit),
hi = min(last matched bid's limit, best unfilled offer's limit).
The price is its midpoint, rounded down: lo + (hi - lo) // 2. A missing bound is dropped; an
empty book has price 0. Pay-as-bid: each match is priced at its bid's limit, on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from . import _auction
from .clearing import Clearing
from .orders import Book

# The walk's final state (`_auction.walk`): volume_wh, welfare, last matched bid, last matched
# offer, best unfilled bid or -1, best unfilled offer or -1, as input indices.
WalkState: TypeAlias = tuple[int, int, int, int, int, int]


@dataclass
class ArrayClearing:
    """Result of clear_arrays: match arrays index into the caller's input arrays."""

    mechanism: str
    price: int | None
    volume_wh: int
    welfare: int
    bid_index: npt.NDArray[np.int64]
    offer_index: npt.NDArray[np.int64]
    quantity_wh: npt.NDArray[np.int64]
    _bid_price: npt.NDArray[np.int64]
    _offer_price: npt.NDArray[np.int64]

    @property
    def buyer_price(self) -> npt.NDArray[np.int64]:
        if self.mechanism == "uniform":
            return np.full(len(self.bid_index), self.price, dtype=np.int64)
        prices: npt.NDArray[np.int64] = self._bid_price[self.bid_index]
        return prices

    @property
    def seller_price(self) -> npt.NDArray[np.int64]:
        return self.buyer_price


def _int64_array(name: str, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers (ticks per kWh, Wh), got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: values above 2**63-1 do not fit int64")
    return np.ascontiguousarray(array, dtype=np.int64)


def _first_bad(
    name: str, array: npt.NDArray[np.int64], bad: npt.NDArray[np.bool_], rule: str
) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {int(array[i])}: {rule}")


def uniform_price(
    bid_price: npt.NDArray[np.int64], offer_price: npt.NDArray[np.int64], state: WalkState
) -> int:
    """The price rule of the module docstring, from the walk's final state."""
    volume, _, last_b, last_o, best_b, best_o = state
    lower: list[int] = []
    upper: list[int] = []
    if volume > 0:
        lower.append(int(offer_price[last_o]))
        upper.append(int(bid_price[last_b]))
    if best_b >= 0:
        lower.append(int(bid_price[best_b]))
    if best_o >= 0:
        upper.append(int(offer_price[best_o]))
    if not lower and not upper:
        return 0
    if not lower:
        return min(upper)
    if not upper:
        return max(lower)
    lo, hi = max(lower), min(upper)
    assert lo <= hi, "the walk stops where the best unfilled bid is below the best unfilled offer"
    return lo + (hi - lo) // 2


def clear_arrays(
    bid_price: npt.ArrayLike,
    bid_qty: npt.ArrayLike,
    offer_price: npt.ArrayLike,
    offer_qty: npt.ArrayLike,
    mechanism: str = "uniform",
) -> ArrayClearing:
    """Clear a book given as integer arrays (prices in ticks per kWh >= 0, quantities in Wh > 0).

    Returns an ArrayClearing with price (None for pay-as-bid), volume_wh, welfare and the match
    arrays bid_index, offer_index, quantity_wh, in walk order (best bid first)."""
    if mechanism not in ("uniform", "pay-as-bid"):
        raise ValueError(f"clear_arrays clears 'uniform' or 'pay-as-bid', not {mechanism!r}")
    bp, bq = _int64_array("bid_price", bid_price), _int64_array("bid_qty", bid_qty)
    op, oq = _int64_array("offer_price", offer_price), _int64_array("offer_qty", offer_qty)
    if len(bp) != len(bq):
        raise ValueError(f"bid_price has {len(bp)} entries but bid_qty has {len(bq)}")
    if len(op) != len(oq):
        raise ValueError(f"offer_price has {len(op)} entries but offer_qty has {len(oq)}")
    _first_bad("bid_qty", bq, bq <= 0, "quantities must be positive")
    _first_bad("offer_qty", oq, oq <= 0, "quantities must be positive")
    _first_bad("bid_price", bp, bp < 0, "prices must not be negative")
    _first_bad("offer_price", op, op < 0, "prices must not be negative")
    bid_index, offer_index, quantity, state = _auction.walk(bp, bq, op, oq)
    price = uniform_price(bp, op, state) if mechanism == "uniform" else None
    return ArrayClearing(
        mechanism, price, state[0], state[1], bid_index, offer_index, quantity, bp, op
    )


def clear_book(book: Book, mechanism: str) -> Clearing:
    """Uniform or pay-as-bid clearing of a whole book as one pool (zones ignored, no fees)."""
    result = clear_arrays(book.bid_price, book.bid_qty, book.offer_price, book.offer_qty, mechanism)
    buyer_price = result.buyer_price
    return Clearing(
        mechanism=mechanism,
        price=result.price,
        zone_prices=None,
        volume_wh=result.volume_wh,
        welfare=result.welfare,
        bid=book.bid_id[result.bid_index],
        offer=book.offer_id[result.offer_index],
        quantity_wh=result.quantity_wh,
        buyer_price=buyer_price,
        seller_price=buyer_price.copy(),
        labels=book.labels,
    )
