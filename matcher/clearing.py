"""The result of a clearing: matches with the prices each side pays or gets, in the shape the
chain's submit_clearing takes, and its canonical JSON (same clearing -> same bytes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .orders import OrderId

MECHANISMS = ("uniform", "pay-as-bid", "zonal")


@dataclass(frozen=True, slots=True)
class Match:
    bid: OrderId
    offer: OrderId
    quantity_wh: int
    buyer_price: int
    seller_price: int


@dataclass
class Clearing:
    """`price` is the single clearing price (uniform) or None (pay-as-bid, zonal);
    `zone_prices` maps zone -> price for zonal. `welfare` is sum over matches of
    (bid limit - offer limit - grid fee) * quantity_wh, in price-tick * Wh units
    (the chain's money unit, 1/1000 tick).

    `bid`/`offer` hold the book's `bid_id`/`offer_id` values: the order ids, or, when the book
    has text ids, keys into `labels` (the book's labels), which `matches` and the JSON map back
    to the ids as given."""

    mechanism: str
    price: int | None
    zone_prices: dict[int, int] | None
    volume_wh: int
    welfare: int
    bid: npt.NDArray[np.uint64]
    offer: npt.NDArray[np.uint64]
    quantity_wh: npt.NDArray[np.int64]
    buyer_price: npt.NDArray[np.int64]
    seller_price: npt.NDArray[np.int64]
    # Zonal only: True when the LP optimum could not be priced with one price per zone and
    # the fallback's (lower-welfare, still valid) clearing was taken.
    fallback: bool | None = None
    labels: Sequence[OrderId] | None = None

    def _ids(self, keys: npt.NDArray[np.uint64]) -> Sequence[OrderId]:
        """The order ids of a match column, as given in the input."""
        values: list[int] = keys.tolist()
        if self.labels is None:
            return values
        labels = self.labels
        return [labels[k] for k in values]

    @property
    def matches(self) -> list[Match]:
        return [
            Match(b, o, int(q), int(bp), int(sp))
            for b, o, q, bp, sp in zip(
                self._ids(self.bid),
                self._ids(self.offer),
                self.quantity_wh.tolist(),
                self.buyer_price.tolist(),
                self.seller_price.tolist(),
            )
        ]

    def chain_zone_prices(self) -> list[tuple[int, int | None]]:
        """The zone_prices argument of submit_clearing: one entry for uniform (zone ignored)."""
        if self.mechanism == "uniform":
            return [(0, self.price)]
        return sorted((self.zone_prices or {}).items())

    def to_json_dict(self) -> dict[str, Any]:
        zone_prices = (
            None
            if self.zone_prices is None
            else {str(zone): price for zone, price in sorted(self.zone_prices.items())}
        )
        head: dict[str, Any] = {
            "mechanism": self.mechanism,
            "price": self.price,
            "zone_prices": zone_prices,
            "volume_wh": self.volume_wh,
            "welfare": self.welfare,
            "matches": [
                {"bid": b, "offer": o, "quantity_wh": q, "buyer_price": bp, "seller_price": sp}
                for b, o, q, bp, sp in zip(
                    self._ids(self.bid),
                    self._ids(self.offer),
                    self.quantity_wh.tolist(),
                    self.buyer_price.tolist(),
                    self.seller_price.tolist(),
                )
            ],
        }
        if self.fallback is not None:
            head["fallback"] = self.fallback
        return head

    def to_json(self) -> str:
        """Canonical JSON: fixed key order, no whitespace, one line per match for diffs."""
        head = self.to_json_dict()
        head.pop("matches")
        fallback = head.pop("fallback", None)
        if fallback is not None:
            head["fallback"] = fallback
        text = json.dumps(head, separators=(",", ":"))[:-1]
        if self.labels is None:
            bids: list[Any] = self.bid.tolist()
            offers: list[Any] = self.offer.tolist()
        else:  # each id as its JSON token: integers bare, text quoted and escaped
            bids = [json.dumps(i) for i in self._ids(self.bid)]
            offers = [json.dumps(i) for i in self._ids(self.offer)]
        rows = ",\n".join(
            f'{{"bid":{b},"offer":{o},"quantity_wh":{q},"buyer_price":{bp},"seller_price":{sp}}}'
            for b, o, q, bp, sp in zip(
                bids,
                offers,
                self.quantity_wh.tolist(),
                self.buyer_price.tolist(),
                self.seller_price.tolist(),
            )
        )
        return f'{text},"matches":[\n{rows}\n]}}\n' if rows else f'{text},"matches":[]}}\n'
