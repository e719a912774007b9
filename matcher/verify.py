"""Re-check a clearing against its orders under the conditions the energy-trading pallet checks
(docs/chain-interface.md), naming each failed condition and the orders involved.

"Unfilled" means an order with some quantity left (partly filled orders count): the stricter
reading of the pallet's equilibrium condition, which the matcher always meets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .network import Network
from .orders import Book, OrderId, show_id

MAX_EXAMPLES = 3  # ids named per failed condition; the count says how many more
_MATCH_NUMBERS = ("quantity_wh", "buyer_price", "seller_price")


@dataclass(frozen=True)
class Violation:
    condition: str
    message: str

    def __str__(self) -> str:
        return f"{self.condition}: {self.message}"


class _Report:
    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def add(self, condition: str, detail: str) -> None:
        self.found.setdefault(condition, []).append(detail)

    def violations(self) -> list[Violation]:
        out = []
        for condition, details in self.found.items():
            shown = "; ".join(details[:MAX_EXAMPLES])
            more = (
                f" (and {len(details) - MAX_EXAMPLES} more)" if len(details) > MAX_EXAMPLES else ""
            )
            out.append(Violation(condition, shown + more))
        return out


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def _is_id(value: object) -> bool:
    """An order id as the JSON may hold it: an unsigned integer or non-empty text."""
    return _is_uint(value) or (isinstance(value, str) and value != "")


def verify(book: Book, clearing: object, network: Network | None = None) -> list[Violation]:
    """All violated conditions of `clearing` (a dict as Clearing.to_json_dict gives) for the
    orders in `book`; an empty list means the pallet would accept it. `network` is the grid:
    its fees, and, as the chain's `Grid`, its lines (a match between zones needs one, the net
    flow over each stays within its capacity, and zonal prices across one differ by more than
    its fee only when it is full). Without it every fee is 0 and zones are not checked. Match
    ids are the order ids as given (integers, or text for a book with text ids)."""
    report = _Report()
    if not isinstance(clearing, dict):
        return [Violation("format", "a clearing is a JSON object")]
    mechanism = clearing.get("mechanism")
    if mechanism not in ("uniform", "pay-as-bid", "zonal"):
        return [Violation("mechanism", f"unknown mechanism {mechanism!r}")]
    matches = clearing.get("matches")
    if not isinstance(matches, list):
        return [Violation("format", "matches must be a list")]

    bid_at: dict[OrderId, int] = {book.order_id(i): k for k, i in enumerate(book.bid_id.tolist())}
    offer_at: dict[OrderId, int] = {
        book.order_id(i): k for k, i in enumerate(book.offer_id.tolist())
    }
    fee_of = network.fee if network is not None else (lambda a, b: 0)
    bid_fill: npt.NDArray[np.object_] = np.zeros(book.n_bids, dtype=object)
    offer_fill: npt.NDArray[np.object_] = np.zeros(book.n_offers, dtype=object)
    price = clearing.get("price")
    zone_prices = clearing.get("zone_prices")
    no_trade = mechanism == "uniform" and price is None and matches == []
    if no_trade:
        # No trade needs no price (the chain takes no zone price then), only a book that
        # does not cross.
        if book.n_bids and book.n_offers:
            top, cheapest = int(np.argmax(book.bid_price)), int(np.argmin(book.offer_price))
            if book.bid_price[top] >= book.offer_price[cheapest]:
                report.add(
                    "equilibrium",
                    f"no trade, but bid {_name(book, book.bid_id, top)} (limit "
                    f"{int(book.bid_price[top])}) reaches offer "
                    f"{_name(book, book.offer_id, cheapest)} (limit "
                    f"{int(book.offer_price[cheapest])})",
                )
    elif mechanism == "uniform" and not _is_uint(price):
        report.add("uniform_price", f"uniform needs one integer price, got {price!r}")
        price = None
    zone_price: dict[int, int] | None = None
    if mechanism == "zonal":
        zone_price = {}
        if not isinstance(zone_prices, dict):
            report.add(
                "zone_prices",
                f"zonal needs zone_prices as an object zone -> price, got {zone_prices!r}",
            )
        else:
            for key, value in zone_prices.items():
                if not str(key).isdigit() or not _is_uint(value):
                    report.add(
                        "zone_prices", f"zone {key!r}: price {value!r} is not an unsigned integer"
                    )
                else:
                    zone_price[int(key)] = value
            for zone in sorted(set(book.bid_zone.tolist()) | set(book.offer_zone.tolist())):
                if zone not in zone_price:
                    report.add("zone_prices", f"zone {zone} has orders but no price")

    total = 0
    # Net flow per line, (lower zone, higher zone) -> Wh from the lower zone to the higher.
    flow: dict[tuple[int, int], int] = {}
    for n, match in enumerate(matches):
        if (
            not isinstance(match, dict)
            or not all(_is_id(match.get(k)) for k in ("bid", "offer"))
            or not all(_is_uint(match.get(k)) for k in _MATCH_NUMBERS)
        ):
            report.add(
                "format",
                f"match {n}: needs order ids bid, offer (unsigned integers or "
                f"text) and unsigned integers quantity_wh, buyer_price, seller_price",
            )
            continue
        bid_id: OrderId = match["bid"]
        offer_id: OrderId = match["offer"]
        q: int = match["quantity_wh"]
        buyer: int = match["buyer_price"]
        seller: int = match["seller_price"]
        b, o = bid_at.get(bid_id), offer_at.get(offer_id)
        if b is None:
            report.add(
                "unknown_order",
                f"match {n}: bid {show_id(bid_id)} is not a bid of this "
                "interval" + (" (it is an offer)" if bid_id in offer_at else ""),
            )
        if o is None:
            report.add(
                "unknown_order",
                f"match {n}: offer {show_id(offer_id)} is not an offer of "
                "this interval" + (" (it is a bid)" if offer_id in bid_at else ""),
            )
        if q == 0:
            report.add(
                "quantity",
                f"match {n} (bid {show_id(bid_id)}, offer {show_id(offer_id)}): quantity_wh is 0",
            )
        total += q
        if b is None or o is None:
            continue
        bid_fill[b] += q
        offer_fill[o] += q
        bid_limit, offer_limit = int(book.bid_price[b]), int(book.offer_price[o])
        bid_zone, offer_zone = int(book.bid_zone[b]), int(book.offer_zone[o])
        pair = f"bid {show_id(bid_id)}, offer {show_id(offer_id)}"
        if buyer > bid_limit:
            report.add("bid_limit", f"{pair}: buyer_price {buyer} > bid limit {bid_limit}")
        if seller < offer_limit:
            report.add("offer_limit", f"{pair}: seller_price {seller} < offer limit {offer_limit}")
        fee = fee_of(offer_zone, bid_zone)
        if network is not None and offer_zone != bid_zone:
            if network.line(offer_zone, bid_zone) is None:
                report.add("no_line", f"{pair}: no line joins zone {offer_zone} to {bid_zone}")
            else:
                key = (min(offer_zone, bid_zone), max(offer_zone, bid_zone))
                flow[key] = flow.get(key, 0) + (q if offer_zone < bid_zone else -q)
        if buyer - seller < fee:
            report.add(
                "grid_fee",
                f"{pair}: buyer_price - seller_price = {buyer - seller} < fee {fee} "
                f"(zone {offer_zone} -> {bid_zone})",
            )
        if book.bid_renewable_only[b] and not book.offer_renewable[o]:
            report.add(
                "renewable_only", f"{pair}: renewable-only bid matched with a grid_mix offer"
            )
        if mechanism == "uniform" and price is not None and (buyer != price or seller != price):
            report.add(
                "uniform_price",
                f"{pair}: buyer_price {buyer}, seller_price {seller}, price {price}",
            )
        elif mechanism == "pay-as-bid" and (buyer != bid_limit or seller != buyer - fee):
            report.add(
                "pay_as_bid_price",
                f"{pair}: buyer_price {buyer} (bid limit {bid_limit}), "
                f"seller_price {seller} (expected {buyer - fee})",
            )
        elif mechanism == "zonal" and zone_price is not None:
            want_b, want_o = zone_price.get(bid_zone), zone_price.get(offer_zone)
            if buyer != want_b or seller != want_o:
                report.add(
                    "zone_price",
                    f"{pair}: buyer_price {buyer} vs price[{bid_zone}] {want_b}, "
                    f"seller_price {seller} vs price[{offer_zone}] {want_o}",
                )

    for k in np.flatnonzero(bid_fill > book.bid_qty).tolist():
        report.add(
            "overfill",
            f"bid {_name(book, book.bid_id, k)}: filled {bid_fill[k]} of {int(book.bid_qty[k])} Wh",
        )
    for k in np.flatnonzero(offer_fill > book.offer_qty).tolist():
        report.add(
            "overfill",
            f"offer {_name(book, book.offer_id, k)}: filled {offer_fill[k]} of "
            f"{int(book.offer_qty[k])} Wh",
        )
    if clearing.get("volume_wh") != total:
        report.add(
            "volume", f"volume_wh {clearing.get('volume_wh')!r} != sum of match quantities {total}"
        )

    if network is not None:
        _lines(report, network, flow, zone_price if mechanism == "zonal" else None)

    if mechanism == "uniform" and price is not None:
        _equilibrium(
            report,
            book,
            bid_fill,
            offer_fill,
            np.ones(book.n_bids, bool),
            np.ones(book.n_offers, bool),
            price,
            "",
        )
    elif mechanism == "zonal" and zone_price is not None:
        for zone, p in sorted(zone_price.items()):
            _equilibrium(
                report,
                book,
                bid_fill,
                offer_fill,
                book.bid_zone == zone,
                book.offer_zone == zone,
                p,
                f" in zone {zone}",
            )
    return report.violations()


def _lines(
    report: _Report,
    network: Network,
    flow: dict[tuple[int, int], int],
    zone_price: dict[int, int] | None,
) -> None:
    """Each line's net flow within its capacity; under zonal prices, a spread above the
    line's fee only toward a zone the full line cannot carry more into."""
    for line in network.lines:
        a, b = sorted((line.from_zone, line.to_zone))
        net = flow.get((a, b), 0)
        if abs(net) > line.capacity_wh:
            src, dst = (a, b) if net > 0 else (b, a)
            report.add(
                "line_capacity",
                f"line {a}-{b}: {abs(net)} Wh net from zone {src} to {dst}, "
                f"capacity {line.capacity_wh} Wh",
            )
        if zone_price is None or a not in zone_price or b not in zone_price:
            continue
        spread = zone_price[b] - zone_price[a]
        spare_ab, spare_ba = line.capacity_wh - net, line.capacity_wh + net
        if (spread > line.fee and spare_ab != 0) or (-spread > line.fee and spare_ba != 0):
            report.add(
                "spread",
                f"line {a}-{b}: prices {zone_price[a]} and {zone_price[b]} differ by more "
                f"than its fee {line.fee} while it has room toward the dearer zone",
            )


def _name(book: Book, ids: npt.NDArray[np.uint64], k: int) -> str:
    """The order at index k of one side of the book, named by its id as given."""
    return show_id(book.order_id(int(ids[k])))


def _equilibrium(
    report: _Report,
    book: Book,
    bid_fill: npt.NDArray[np.object_],
    offer_fill: npt.NDArray[np.object_],
    bid_mask: npt.NDArray[np.bool_],
    offer_mask: npt.NDArray[np.bool_],
    price: int,
    where: str,
) -> None:
    """No unfilled bid with limit > price while an unfilled offer with limit < price exists."""
    bids = np.flatnonzero(bid_mask & (bid_fill < book.bid_qty) & (book.bid_price > price))
    offers = np.flatnonzero(offer_mask & (offer_fill < book.offer_qty) & (book.offer_price < price))
    if len(bids) and len(offers):
        b = bids[np.argmax(book.bid_price[bids])]
        o = offers[np.argmin(book.offer_price[offers])]
        report.add(
            "equilibrium",
            f"unfilled bid {_name(book, book.bid_id, b)} (limit "
            f"{int(book.bid_price[b])}) above price {price} while unfilled offer "
            f"{_name(book, book.offer_id, o)} (limit "
            f"{int(book.offer_price[o])}) is below it{where}",
        )
