"""The result of a clearing: matches with the prices each side pays or gets, in the shape the
chain's submit_clearing takes, and its canonical JSON (same clearing -> same bytes)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

MECHANISMS = ("uniform", "pay-as-bid", "zonal")


@dataclass(frozen=True, slots=True)
class Match:
    bid: int
    offer: int
    quantity_wh: int
    buyer_price: int
    seller_price: int


@dataclass
class Clearing:
    """`price` is the single clearing price (uniform) or None (pay-as-bid, zonal);
    `zone_prices` maps zone -> price for zonal. `welfare` is sum over matches of
    (bid limit - offer limit - grid fee) * quantity_wh, in price-tick * Wh units
    (the chain's money unit, 1/1000 tick)."""

    mechanism: str
    price: int | None
    zone_prices: dict[int, int] | None
    volume_wh: int
    welfare: int
    bid: np.ndarray          # order ids, uint64
    offer: np.ndarray
    quantity_wh: np.ndarray  # int64
    buyer_price: np.ndarray  # int64
    seller_price: np.ndarray
    # Zonal only: True when the LP optimum could not be priced with one price per zone and
    # the fallback's (lower-welfare, still valid) clearing was taken.
    fallback: bool | None = None

    @property
    def matches(self) -> list[Match]:
        return [Match(int(b), int(o), int(q), int(bp), int(sp)) for b, o, q, bp, sp in
                zip(self.bid.tolist(), self.offer.tolist(), self.quantity_wh.tolist(),
                    self.buyer_price.tolist(), self.seller_price.tolist())]

    def chain_zone_prices(self) -> list[tuple[int, int]]:
        """The zone_prices argument of submit_clearing: one entry for uniform (zone ignored)."""
        if self.mechanism == "uniform":
            return [(0, self.price)]
        return sorted((self.zone_prices or {}).items())

    def to_json_dict(self) -> dict:
        zone_prices = None if self.zone_prices is None else \
            {str(zone): price for zone, price in sorted(self.zone_prices.items())}
        head = {
            "mechanism": self.mechanism,
            "price": self.price,
            "zone_prices": zone_prices,
            "volume_wh": self.volume_wh,
            "welfare": self.welfare,
            "matches": [{"bid": b, "offer": o, "quantity_wh": q, "buyer_price": bp, "seller_price": sp}
                        for b, o, q, bp, sp in zip(self.bid.tolist(), self.offer.tolist(),
                                                    self.quantity_wh.tolist(), self.buyer_price.tolist(),
                                                    self.seller_price.tolist())],
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
        rows = ",\n".join(
            f'{{"bid":{b},"offer":{o},"quantity_wh":{q},"buyer_price":{bp},"seller_price":{sp}}}'
            for b, o, q, bp, sp in zip(self.bid.tolist(), self.offer.tolist(), self.quantity_wh.tolist(),
                                       self.buyer_price.tolist(), self.seller_price.tolist()))
        return f'{text},"matches":[\n{rows}\n]}}\n' if rows else f'{text},"matches":[]}}\n'
