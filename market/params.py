"""The market's parameters as the pallet stores them (`EnergyTrading.Params`), and the interval
arithmetic every part shares: interval k runs [k * interval_ms, (k + 1) * interval_ms) in chain
time, and its gate closes gate_closure_ms before it starts. Each interval keeps the parameters
its gate closed under; a change applies from the first interval whose gate was still open."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

from .enums import MECHANISMS, Mechanism, from_chain_name, to_chain_name


@dataclass(frozen=True)
class MarketParams:
    interval_ms: int
    gate_closure_ms: int
    min_price_ticks: int
    max_price_ticks: int
    max_quantity_wh: int
    utility_tariff_ticks: int
    feed_in_ticks: int
    # Settlement waits this long after an interval's end for its traders' readings, then
    # estimates the missing ones (the pallet's `settlement.rs`).
    reading_window_ms: int
    # How the interval is cleared: uniform, pay-as-bid or zonal (our names). Fixed with the
    # rest when the interval's gate closes; a renewable-only bid needs pay-as-bid or zonal.
    mechanism: Mechanism

    @classmethod
    def from_chain(cls, value: dict[str, Any]) -> MarketParams:
        """From the pallet's `MarketParams` as the node decodes it."""
        numbers = {f.name: int(value[f.name]) for f in dataclasses.fields(cls) if f.type == "int"}
        mechanism = from_chain_name(value["mechanism"])
        if mechanism not in MECHANISMS:
            raise ValueError(f"not a mechanism: {value['mechanism']!r}")
        return cls(**numbers, mechanism=cast(Mechanism, mechanism))

    def as_chain(self) -> dict[str, Any]:
        """The call argument of `set_market_params`."""
        return {**self.as_dict(), "mechanism": to_chain_name(self.mechanism)}

    def interval_start(self, interval: int) -> int:
        return interval * self.interval_ms

    def interval_end(self, interval: int) -> int:
        return (interval + 1) * self.interval_ms

    def gate_closure(self, interval: int) -> int:
        return max(0, self.interval_start(interval) - self.gate_closure_ms)

    def reading_deadline(self, interval: int) -> int:
        return self.interval_end(interval) + self.reading_window_ms

    def interval_at(self, now_ms: int) -> int:
        return now_ms // max(1, self.interval_ms)

    def first_open_interval(self, now_ms: int, margin_ms: int = 0) -> int:
        """The earliest interval whose gate closes after now + margin."""
        k = self.interval_at(now_ms + margin_ms + self.gate_closure_ms)
        while self.gate_closure(k) <= now_ms + margin_ms:
            k += 1
        return k

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
