"""Type stub of the Cython core `_auction.pyx` (keep the two in step; check with
`python -m mypy.stubtest matcher._auction`).

The array arguments are typed memoryviews `const int64_t[::1]`: any C-contiguous int64 buffer
is accepted, and the callers pass int64 NumPy arrays."""

import numpy as np
import numpy.typing as npt

_Int64s = npt.NDArray[np.int64]

__test__: dict[str, str]  # Cython's doctest table

def merit_order(price: _Int64s, descending: bool) -> _Int64s:
    """Indices of the orders in merit order: price (descending for bids), then index."""

def walk(
    bid_price: _Int64s,
    bid_qty: _Int64s,
    offer_price: _Int64s,
    offer_qty: _Int64s,
) -> tuple[_Int64s, _Int64s, _Int64s, tuple[int, int, int, int, int, int]]:
    """Match the book in merit order. Returns (bid_index, offer_index, quantity_wh, state),
    state = (volume_wh, welfare, last matched bid, last matched offer, best unfilled bid or
    -1, best unfilled offer or -1), all as input indices."""
