"""Orders and the order book: parsing of the CSV and of API dicts into validated integer arrays.

Every bad order is reported with the line it came from (the CSV line number, or the 1-based
position in a list given to the API), and nothing is cleared until the whole input is valid.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

SOURCES = ("solar", "wind", "hydro", "biomass", "grid_mix")
REQUIRED_COLUMNS = ("id", "side", "quantity_wh", "price")
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1   # quantities and prices live in int64 arrays
U16_MAX = 2**16 - 1   # zone ids are u16 on chain
_INT = re.compile(r"[+-]?[0-9]+\Z")


class OrderError(ValueError):
    """An order that cannot be cleared; `line` says where it came from."""

    def __init__(self, line: int, message: str, where: str = "line"):
        self.line = line
        super().__init__(f"{where} {line}: {message}")


@dataclass(frozen=True, slots=True)
class Order:
    """One limit order of an interval. `price` is in ticks per kWh, `quantity_wh` in Wh."""

    id: int
    side: str  # "bid" or "offer"
    quantity_wh: int
    price: int
    zone: int = 0
    source: str = "grid_mix"
    renewable_only: bool = False

    @property
    def renewable(self) -> bool:
        return self.source != "grid_mix"


@dataclass
class Book:
    """Both sides of the book as arrays, each side sorted by order id (so that the index order
    is the id order the tie rule needs). `*_line` keeps where each order came from."""

    bid_id: np.ndarray           # uint64
    bid_price: np.ndarray        # int64 ticks/kWh
    bid_qty: np.ndarray          # int64 Wh
    bid_zone: np.ndarray         # int64
    bid_renewable_only: np.ndarray  # bool
    bid_line: np.ndarray         # int64
    offer_id: np.ndarray
    offer_price: np.ndarray
    offer_qty: np.ndarray
    offer_zone: np.ndarray
    offer_renewable: np.ndarray  # bool: source is not grid_mix
    offer_line: np.ndarray
    where: str = "line"

    @property
    def n_bids(self) -> int:
        return len(self.bid_id)

    @property
    def n_offers(self) -> int:
        return len(self.offer_id)

    @classmethod
    def from_orders(cls, orders: Iterable[tuple[int, Order]], where: str = "line") -> "Book":
        """Build a book from (line, Order) pairs that are already valid one by one."""
        seen: dict[int, int] = {}
        bids: list[tuple[int, Order]] = []
        offers: list[tuple[int, Order]] = []
        for line, order in orders:
            first = seen.get(order.id)
            if first is not None:
                raise OrderError(line, f"duplicate order id {order.id} (first on {where} {first})", where)
            seen[order.id] = line
            (bids if order.side == "bid" else offers).append((line, order))
        bids.sort(key=lambda lo: lo[1].id)
        offers.sort(key=lambda lo: lo[1].id)

        def column(rows, get, dtype):
            return np.array([get(o) for _, o in rows], dtype=dtype)

        return cls(
            bid_id=column(bids, lambda o: o.id, np.uint64),
            bid_price=column(bids, lambda o: o.price, np.int64),
            bid_qty=column(bids, lambda o: o.quantity_wh, np.int64),
            bid_zone=column(bids, lambda o: o.zone, np.int64),
            bid_renewable_only=column(bids, lambda o: o.renewable_only, bool),
            bid_line=np.array([line for line, _ in bids], dtype=np.int64),
            offer_id=column(offers, lambda o: o.id, np.uint64),
            offer_price=column(offers, lambda o: o.price, np.int64),
            offer_qty=column(offers, lambda o: o.quantity_wh, np.int64),
            offer_zone=column(offers, lambda o: o.zone, np.int64),
            offer_renewable=column(offers, lambda o: o.renewable, bool),
            offer_line=np.array([line for line, _ in offers], dtype=np.int64),
            where=where,
        )

    @classmethod
    def from_arrays(cls, bid_price, bid_qty, offer_price, offer_qty, bid_zone=None, offer_zone=None,
                    bid_renewable_only=None, offer_renewable=None) -> "Book":
        """A book whose ids are the array indices (bids 0..nb-1, offers nb..nb+no-1), for
        benchmarks and analysts; the caller guarantees valid values."""
        nb, no = len(bid_price), len(offer_price)
        zeros_b, zeros_o = np.zeros(nb, np.int64), np.zeros(no, np.int64)
        return cls(
            bid_id=np.arange(nb, dtype=np.uint64),
            bid_price=np.ascontiguousarray(bid_price, np.int64),
            bid_qty=np.ascontiguousarray(bid_qty, np.int64),
            bid_zone=zeros_b if bid_zone is None else np.ascontiguousarray(bid_zone, np.int64),
            bid_renewable_only=np.zeros(nb, bool) if bid_renewable_only is None else np.asarray(bid_renewable_only, bool),
            bid_line=np.arange(1, nb + 1, dtype=np.int64),
            offer_id=np.arange(nb, nb + no, dtype=np.uint64),
            offer_price=np.ascontiguousarray(offer_price, np.int64),
            offer_qty=np.ascontiguousarray(offer_qty, np.int64),
            offer_zone=zeros_o if offer_zone is None else np.ascontiguousarray(offer_zone, np.int64),
            offer_renewable=np.zeros(no, bool) if offer_renewable is None else np.asarray(offer_renewable, bool),
            offer_line=np.arange(nb + 1, nb + no + 1, dtype=np.int64),
            where="order",
        )


def _integer(value: object, what: str, line: int, where: str, low: int, high: int) -> int:
    """An integer in [low, high] from an int or a decimal string; floats and '1.5' are refused."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, str) and _INT.match(value.strip()):
        number = int(value.strip())
    else:
        raise OrderError(line, f"{what} must be an integer, got {value!r}", where)
    if number < low or number > high:
        if what == "quantity_wh" and number <= 0:
            raise OrderError(line, f"quantity_wh must be a positive integer, got {number}", where)
        raise OrderError(line, f"{what} must be between {low} and {high}, got {number}", where)
    return number


def _flag(value, line: int, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("", "0", "false"):
        return False
    if text in ("1", "true"):
        return True
    raise OrderError(line, f"renewable_only must be 0 or 1, got {value!r}", where)


def parse_order(fields: Mapping[str, object], line: int, where: str = "line") -> Order:
    """Validate one order given as a mapping of column -> value (strings or ints)."""
    for name in REQUIRED_COLUMNS:
        if fields.get(name) is None or (isinstance(fields.get(name), str) and not fields[name].strip()):
            raise OrderError(line, f"missing {name}", where)

    def integer(name: str, low: int, high: int) -> int:
        return _integer(fields[name], name, line, where, low, high)

    side = str(fields["side"]).strip().lower()
    if side not in ("bid", "offer"):
        raise OrderError(line, f"unknown side {fields['side']!r} (expected bid or offer)", where)
    order_id = integer("id", 0, U64_MAX)
    quantity_wh = integer("quantity_wh", 1, I64_MAX)
    price = integer("price", 0, I64_MAX)
    zone = 0 if fields.get("zone") in (None, "") else integer("zone", 0, U16_MAX)
    source = fields.get("source")
    source = "grid_mix" if source in (None, "") else str(source).strip().lower()
    if source not in SOURCES:
        raise OrderError(line, f"unknown source {fields.get('source')!r} (expected one of {', '.join(SOURCES)})", where)
    renewable_only = _flag(fields.get("renewable_only", False) or False, line, where)
    if side == "offer" and renewable_only:
        raise OrderError(line, "renewable_only is for bids; an offer states its source instead", where)
    if side == "bid":
        source = "grid_mix"  # the chain ignores a bid's source
    return Order(order_id, side, quantity_wh, price, zone, source, renewable_only)


def book_from_orders(orders: Iterable[Order | Mapping[str, object]]) -> Book:
    """Validate API orders (dicts or Order) and build the book; errors name the 1-based position."""
    rows = []
    for position, item in enumerate(orders, start=1):
        if isinstance(item, Order):
            item = {"id": item.id, "side": item.side, "quantity_wh": item.quantity_wh, "price": item.price,
                    "zone": item.zone, "source": item.source, "renewable_only": item.renewable_only}
        elif not isinstance(item, Mapping):
            raise OrderError(position, f"expected a dict or Order, got {type(item).__name__}", "order")
        rows.append((position, parse_order(item, position, "order")))
    return Book.from_orders(rows, where="order")


def read_orders_csv(path: str) -> Book:
    """Read and validate a CSV of orders. Raises OrderError naming the first bad line."""
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise OrderError(0, f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise OrderError(1, "empty file: expected a header with id,side,quantity_wh,price")
            columns = [name.strip().lower() for name in header]
            missing = [name for name in REQUIRED_COLUMNS if name not in columns]
            if missing:
                raise OrderError(1, f"header lacks column(s) {', '.join(missing)}")
            if len(set(columns)) != len(columns):
                raise OrderError(1, "header repeats a column")
            rows = []
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise OrderError(line, f"malformed row: {len(row)} fields, the header has {len(columns)}")
                rows.append((line, parse_order(dict(zip(columns, row)), line)))
        except csv.Error as exc:
            raise OrderError(reader.line_num, f"malformed CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise OrderError(reader.line_num + 1, "not UTF-8 text") from exc
    return Book.from_orders(rows)
