"""The grid seen by the zonal clearing: zones, and lines between two zones with a capacity per
direction and a grid fee per zone pair.

JSON format: {"zones": [0, 1, 2], "lines": [{"from": 0, "to": 1, "capacity_wh": 5000, "fee": 2}]}
A line carries at most capacity_wh in each direction, and a match between an offer in one of
its zones and a bid in the other pays `fee` ticks per kWh, in either direction. Energy moves
only over a direct line (no transit through a third zone), so every match's fee is the fee of
one zone pair, as the chain's `Grid` has it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

U16_MAX = 2**16 - 1
I64_MAX = 2**63 - 1


class NetworkError(ValueError):
    """A network description that cannot be used; the message says which entry is wrong."""


@dataclass(frozen=True, slots=True)
class Line:
    from_zone: int
    to_zone: int
    capacity_wh: int
    fee: int  # ticks per kWh, for a match between the two zones in either direction


@dataclass(frozen=True)
class Network:
    zones: tuple[int, ...]
    lines: tuple[Line, ...] = ()

    def fee(self, offer_zone: int, bid_zone: int) -> int:
        """Grid fee of a match from an offer zone to a bid zone; 0 inside a zone or without
        a line."""
        if offer_zone == bid_zone:
            return 0
        line = self._by_pair.get((offer_zone, bid_zone))
        return 0 if line is None else line.fee

    def line(self, zone_a: int, zone_b: int) -> Line | None:
        """The line between two zones, whichever way it is named; None if none joins them."""
        return self._by_pair.get((zone_a, zone_b))

    @property
    def _by_pair(self) -> dict[tuple[int, int], Line]:
        cached = self.__dict__.get("_pairs")
        if cached is None:
            cached = {}
            for line in self.lines:
                cached[(line.from_zone, line.to_zone)] = line
                cached[(line.to_zone, line.from_zone)] = line
            object.__setattr__(self, "_pairs", cached)
        return cached

    @classmethod
    def from_dict(cls, data: object) -> Network:
        if not isinstance(data, dict):
            raise NetworkError("network: expected a JSON object with 'zones' and 'lines'")
        unknown = set(data) - {"zones", "lines"}
        if unknown:
            raise NetworkError(f"network: unknown key(s) {', '.join(sorted(unknown))}")
        zones = data.get("zones")
        if not isinstance(zones, list) or not zones:
            raise NetworkError("network.zones: expected a non-empty list of zone ids")
        for i, zone in enumerate(zones):
            if not _is_int(zone) or not 0 <= zone <= U16_MAX:
                raise NetworkError(
                    f"network.zones[{i}]: zone ids are integers 0..{U16_MAX}, got {zone!r}"
                )
        if len(set(zones)) != len(zones):
            raise NetworkError("network.zones: a zone is listed twice")
        lines = []
        pairs: dict[frozenset[int], int] = {}
        raw_lines = data.get("lines", [])
        if not isinstance(raw_lines, list):
            raise NetworkError("network.lines: expected a list")
        for i, raw in enumerate(raw_lines):
            where = f"network.lines[{i}]"
            if not isinstance(raw, dict):
                raise NetworkError(f"{where}: expected an object with from, to, capacity_wh, fee")
            extra = set(raw) - {"from", "to", "capacity_wh", "fee"}
            if extra:
                raise NetworkError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
            for key in ("from", "to", "capacity_wh"):
                if key not in raw:
                    raise NetworkError(f"{where}: missing {key}")
            a, b, cap, fee = raw["from"], raw["to"], raw["capacity_wh"], raw.get("fee", 0)
            for key, value in (("from", a), ("to", b)):
                if value not in zones or not _is_int(value):
                    raise NetworkError(f"{where}.{key}: zone {value!r} is not in network.zones")
            if a == b:
                raise NetworkError(f"{where}: a line joins two different zones, got {a} to {b}")
            if not _is_int(cap) or not 0 <= cap <= I64_MAX:
                raise NetworkError(
                    f"{where}.capacity_wh: expected a non-negative integer, got {cap!r}"
                )
            if not _is_int(fee) or not 0 <= fee <= I64_MAX:
                raise NetworkError(f"{where}.fee: expected a non-negative integer, got {fee!r}")
            pair = frozenset((a, b))
            if pair in pairs:
                raise NetworkError(
                    f"{where}: zones {a} and {b} already have a line (lines[{pairs[pair]}])"
                )
            pairs[pair] = i
            lines.append(Line(a, b, cap, fee))
        return cls(tuple(sorted(zones)), tuple(lines))

    @classmethod
    def load(cls, path: str) -> Network:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise NetworkError(f"{path}: cannot read: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise NetworkError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from exc
        try:
            return cls.from_dict(data)
        except NetworkError as exc:
            raise NetworkError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "zones": list(self.zones),
            "lines": [
                {
                    "from": ln.from_zone,
                    "to": ln.to_zone,
                    "capacity_wh": ln.capacity_wh,
                    "fee": ln.fee,
                }
                for ln in self.lines
            ],
        }


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
