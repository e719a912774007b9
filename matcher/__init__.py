"""WattChain's clearing engine: uniform-price and pay-as-bid double auctions on a Cython core,
and zonal clearing (line capacities, grid fees, renewable-only bids) with OR-Tools.

    clear_orders(orders, mechanism="uniform", network=None) -> Clearing
    clear_arrays(bid_price, bid_qty, offer_price, offer_qty) -> ArrayClearing
    verify(book, clearing_json_dict, network=None) -> list[Violation]

Tie rule, price rules and the zonal method: see `auction` and `zonal`, and docs/matcher.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from .auction import ArrayClearing, clear_arrays
from .clearing import MECHANISMS, Clearing, Match
from .network import Line, Network, NetworkError
from .orders import Book, Order, OrderError, OrderId, book_from_orders, read_orders_csv
from .verify import Violation, verify

__all__ = [
    "ArrayClearing",
    "Book",
    "Clearing",
    "Line",
    "Match",
    "MECHANISMS",
    "Network",
    "NetworkError",
    "Order",
    "OrderError",
    "OrderId",
    "Violation",
    "clear_arrays",
    "clear_book",
    "clear_orders",
    "read_orders_csv",
    "verify",
]


# What `network=` takes: None, a Network, a dict in the JSON format, or a path to a JSON file.
NetworkLike: TypeAlias = Network | Mapping[str, object] | str | os.PathLike[str] | None


def as_network(network: NetworkLike) -> Network | None:
    """None, a Network, a dict in the JSON format, or a path to a JSON file."""
    if network is None or isinstance(network, Network):
        return network
    if isinstance(network, Mapping):
        return Network.from_dict(dict(network))
    if isinstance(network, (str, os.PathLike)):
        return Network.load(os.fspath(network))
    raise TypeError(f"network: expected None, Network, dict or path, got {type(network).__name__}")


def clear_book(book: Book, mechanism: str = "uniform", network: NetworkLike = None) -> Clearing:
    """Clear a validated book. Uniform and pay-as-bid clear one pool (zones ignored, no fees);
    pay-as-bid with a network or renewable-only bids takes the zonal fills."""
    from . import auction, zonal

    network = as_network(network)
    renewable_only = book.bid_renewable_only.any()
    if mechanism == "uniform":
        if network is not None:
            raise ValueError(
                "the uniform mechanism clears one pool without a network; use mechanism 'zonal'"
            )
        if renewable_only:
            first = int(book.bid_line[book.bid_renewable_only].min())
            raise OrderError(
                first,
                "a renewable_only bid needs mechanism 'zonal' (uniform has one price and "
                "cannot keep renewable energy apart)",
                book.where,
            )
        return auction.clear_book(book, "uniform")
    if mechanism == "pay-as-bid":
        if network is None and not renewable_only:
            return auction.clear_book(book, "pay-as-bid")
        return zonal.clear_zonal(book, network, pricing="pay-as-bid", one_pool=network is None)
    if mechanism == "zonal":
        return zonal.clear_zonal(book, network)
    raise ValueError(f"unknown mechanism {mechanism!r}; expected one of {', '.join(MECHANISMS)}")


def clear_orders(
    orders: Book | Iterable[Order | Mapping[str, object]],
    mechanism: str = "uniform",
    network: NetworkLike = None,
) -> Clearing:
    """Clear a list of orders (dicts with id, side, quantity_wh, price and optional zone,
    source, renewable_only; or Order). Errors name the 1-based position of the bad order."""
    book = orders if isinstance(orders, Book) else book_from_orders(orders)
    return clear_book(book, mechanism, network)
