"""Orders and the order book: parsing of the CSV and of API dicts into validated integer arrays.

Every bad order is reported with the line it came from (the CSV line number, or the 1-based
position in a list given to the API), and nothing is cleared until the whole input is valid.

Order ids are integers 0..2**64-1 (the chain's ids) or any other non-empty text (an operator's
own names). Text that is a decimal integer is read as that integer, so `7` and `007` are the
same id. The numeric core never sees text: a book with a text id keys its orders by dense
indices and keeps the ids as given in `Book.labels`, and the clearing maps them back.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

OrderId: TypeAlias = int | str
IntArray: TypeAlias = npt.NDArray[np.integer[Any]] | Sequence[int]
BoolArray: TypeAlias = npt.NDArray[np.bool_] | Sequence[bool]

SOURCES = ("solar", "wind", "hydro", "biomass", "grid_mix")
REQUIRED_COLUMNS = ("id", "side", "quantity_wh", "price")
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1  # quantities and prices live in int64 arrays
U16_MAX = 2**16 - 1  # zone ids are u16 on chain
_INT = re.compile(r"[+-]?[0-9]+\Z")


class OrderError(ValueError):
    """An order that cannot be cleared; `line` says where it came from."""

    def __init__(self, line: int, message: str, where: str = "line") -> None:
        self.line = line
        super().__init__(f"{where} {line}: {message}")


@dataclass(frozen=True, slots=True)
class Order:
    """One limit order of an interval. `price` is in ticks per kWh, `quantity_wh` in Wh."""

    id: OrderId  # an integer 0..2**64-1, or non-empty text
    side: str  # "bid" or "offer"
    quantity_wh: int
    price: int
    zone: int = 0
    source: str = "grid_mix"
    renewable_only: bool = False

    @property
    def renewable(self) -> bool:
        return self.source != "grid_mix"


def show_id(order_id: OrderId) -> str:
    """An order id as error messages name it: an integer bare, text quoted ('b0')."""
    return repr(order_id) if isinstance(order_id, str) else str(order_id)


def id_sort_key(order_id: OrderId) -> tuple[int, int, str]:
    """The id order of the tie rule: integer ids ascending, then text ids by code point."""
    return (1, 0, order_id) if isinstance(order_id, str) else (0, order_id, "")


def _int64s(rows: list[tuple[int, Order]], get: Callable[[Order], int]) -> npt.NDArray[np.int64]:
    return np.array([get(o) for _, o in rows], dtype=np.int64)


def _flags(rows: list[tuple[int, Order]], get: Callable[[Order], bool]) -> npt.NDArray[np.bool_]:
    return np.array([get(o) for _, o in rows], dtype=np.bool_)


@dataclass
class Book:
    """Both sides of the book as arrays, each side sorted by order id (so that the index order
    is the id order the tie rule needs). `*_line` keeps where each order came from.

    `bid_id`/`offer_id` are the order ids themselves when every id is an integer (`labels` is
    None). When some id is text, they are keys instead: bids 0..nb-1 and offers nb..nb+no-1 in
    id order, and `labels[key]` is the order id as given (int or str)."""

    bid_id: npt.NDArray[np.uint64]
    bid_price: npt.NDArray[np.int64]  # ticks/kWh
    bid_qty: npt.NDArray[np.int64]  # Wh
    bid_zone: npt.NDArray[np.int64]
    bid_renewable_only: npt.NDArray[np.bool_]
    bid_line: npt.NDArray[np.int64]
    offer_id: npt.NDArray[np.uint64]
    offer_price: npt.NDArray[np.int64]
    offer_qty: npt.NDArray[np.int64]
    offer_zone: npt.NDArray[np.int64]
    offer_renewable: npt.NDArray[np.bool_]  # source is not grid_mix
    offer_line: npt.NDArray[np.int64]
    where: str = "line"
    labels: Sequence[OrderId] | None = None

    @property
    def n_bids(self) -> int:
        return len(self.bid_id)

    @property
    def n_offers(self) -> int:
        return len(self.offer_id)

    def order_id(self, key: int) -> OrderId:
        """The order id behind a value of `bid_id`/`offer_id`."""
        return key if self.labels is None else self.labels[key]

    @classmethod
    def from_orders(cls, orders: Iterable[tuple[int, Order]], where: str = "line") -> Book:
        """Build a book from (line, Order) pairs that are already valid one by one."""
        seen: dict[OrderId, int] = {}
        bids: list[tuple[int, Order]] = []
        offers: list[tuple[int, Order]] = []
        for line, order in orders:
            first = seen.get(order.id)
            if first is not None:
                raise OrderError(
                    line,
                    f"duplicate order id {show_id(order.id)} (first on {where} {first})",
                    where,
                )
            seen[order.id] = line
            (bids if order.side == "bid" else offers).append((line, order))
        labels: list[OrderId] | None = None
        if any(isinstance(order_id, str) for order_id in seen):
            bids.sort(key=lambda lo: id_sort_key(lo[1].id))
            offers.sort(key=lambda lo: id_sort_key(lo[1].id))
            labels = [o.id for _, o in bids] + [o.id for _, o in offers]
            bid_id = np.arange(len(bids), dtype=np.uint64)
            offer_id = np.arange(len(bids), len(labels), dtype=np.uint64)
        else:
            bids.sort(key=lambda lo: lo[1].id)
            offers.sort(key=lambda lo: lo[1].id)
            bid_id = np.array([o.id for _, o in bids], dtype=np.uint64)
            offer_id = np.array([o.id for _, o in offers], dtype=np.uint64)
        return cls(
            bid_id=bid_id,
            bid_price=_int64s(bids, lambda o: o.price),
            bid_qty=_int64s(bids, lambda o: o.quantity_wh),
            bid_zone=_int64s(bids, lambda o: o.zone),
            bid_renewable_only=_flags(bids, lambda o: o.renewable_only),
            bid_line=np.array([line for line, _ in bids], dtype=np.int64),
            offer_id=offer_id,
            offer_price=_int64s(offers, lambda o: o.price),
            offer_qty=_int64s(offers, lambda o: o.quantity_wh),
            offer_zone=_int64s(offers, lambda o: o.zone),
            offer_renewable=_flags(offers, lambda o: o.renewable),
            offer_line=np.array([line for line, _ in offers], dtype=np.int64),
            where=where,
            labels=labels,
        )

    @classmethod
    def from_arrays(
        cls,
        bid_price: IntArray,
        bid_qty: IntArray,
        offer_price: IntArray,
        offer_qty: IntArray,
        bid_zone: IntArray | None = None,
        offer_zone: IntArray | None = None,
        bid_renewable_only: BoolArray | None = None,
        offer_renewable: BoolArray | None = None,
    ) -> Book:
        """A book whose ids are the array indices (bids 0..nb-1, offers nb..nb+no-1), for
        benchmarks and analysts; the caller guarantees valid values."""
        nb, no = len(bid_price), len(offer_price)
        zeros_b, zeros_o = np.zeros(nb, np.int64), np.zeros(no, np.int64)
        return cls(
            bid_id=np.arange(nb, dtype=np.uint64),
            bid_price=np.ascontiguousarray(bid_price, np.int64),
            bid_qty=np.ascontiguousarray(bid_qty, np.int64),
            bid_zone=zeros_b if bid_zone is None else np.ascontiguousarray(bid_zone, np.int64),
            bid_renewable_only=np.zeros(nb, bool)
            if bid_renewable_only is None
            else np.asarray(bid_renewable_only, bool),
            bid_line=np.arange(1, nb + 1, dtype=np.int64),
            offer_id=np.arange(nb, nb + no, dtype=np.uint64),
            offer_price=np.ascontiguousarray(offer_price, np.int64),
            offer_qty=np.ascontiguousarray(offer_qty, np.int64),
            offer_zone=zeros_o
            if offer_zone is None
            else np.ascontiguousarray(offer_zone, np.int64),
            offer_renewable=np.zeros(no, bool)
            if offer_renewable is None
            else np.asarray(offer_renewable, bool),
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


def _order_id(value: object, line: int, where: str) -> OrderId:
    """An order id: an integer 0..2**64-1 (an int, or text that is a decimal integer, read as
    that integer, so the chain's ids stay integers), else the text itself without surrounding
    blanks. Non-text values that are not integers (1.5, True, None) are refused."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise OrderError(line, "missing id", where)
        return _integer(text, "id", line, where, 0, U64_MAX) if _INT.match(text) else text
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return _integer(value, "id", line, where, 0, U64_MAX)
    raise OrderError(line, f"id must be an integer or non-empty text, got {value!r}", where)


def _flag(value: object, line: int, where: str) -> bool:
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
        value = fields.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise OrderError(line, f"missing {name}", where)

    def integer(name: str, low: int, high: int) -> int:
        return _integer(fields[name], name, line, where, low, high)

    side = str(fields["side"]).strip().lower()
    if side not in ("bid", "offer"):
        raise OrderError(line, f"unknown side {fields['side']!r} (expected bid or offer)", where)
    order_id = _order_id(fields["id"], line, where)
    quantity_wh = integer("quantity_wh", 1, I64_MAX)
    price = integer("price", 0, I64_MAX)
    zone = 0 if fields.get("zone") in (None, "") else integer("zone", 0, U16_MAX)
    source = fields.get("source")
    source = "grid_mix" if source in (None, "") else str(source).strip().lower()
    if source not in SOURCES:
        raise OrderError(
            line,
            f"unknown source {fields.get('source')!r} (expected one of {', '.join(SOURCES)})",
            where,
        )
    renewable_only = _flag(fields.get("renewable_only", False) or False, line, where)
    if side == "offer" and renewable_only:
        raise OrderError(
            line, "renewable_only is for bids; an offer states its source instead", where
        )
    if side == "bid":
        source = "grid_mix"  # the chain ignores a bid's source
    return Order(order_id, side, quantity_wh, price, zone, source, renewable_only)


def book_from_orders(orders: Iterable[Order | Mapping[str, object]]) -> Book:
    """Validate API orders (dicts or Order) and build the book; errors name the 1-based position."""
    rows = []
    for position, item in enumerate(orders, start=1):
        if isinstance(item, Order):
            item = {
                "id": item.id,
                "side": item.side,
                "quantity_wh": item.quantity_wh,
                "price": item.price,
                "zone": item.zone,
                "source": item.source,
                "renewable_only": item.renewable_only,
            }
        elif not isinstance(item, Mapping):
            raise OrderError(
                position, f"expected a dict or Order, got {type(item).__name__}", "order"
            )
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
                    raise OrderError(
                        line, f"malformed row: {len(row)} fields, the header has {len(columns)}"
                    )
                rows.append((line, parse_order(dict(zip(columns, row)), line)))
        except csv.Error as exc:
            raise OrderError(reader.line_num, f"malformed CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise OrderError(reader.line_num + 1, "not UTF-8 text") from exc
    return Book.from_orders(rows)
