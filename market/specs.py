"""What an order's owner signs (`OrderSpec`), checked on construction against the pallet's
types, with its SCALE encoding (docs/chain-interface.md)."""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from typing import Any

from .enums import SIDES, SOURCES, from_chain_name, to_chain_name
from .units import U16_MAX, U64_MAX


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """side: 'bid'|'offer'; source: solar|wind|hydro|biomass|grid_mix."""

    client_order_id: int
    interval: int
    side: str
    quantity_wh: int
    price_ticks: int
    zone: int = 0
    source: str = "grid_mix"
    renewable_only: bool = False

    def __post_init__(self) -> None:
        for name in ("client_order_id", "interval", "quantity_wh", "price_ticks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U64_MAX:
                raise ValueError(f"{name} must be an integer in 0..2^64-1, got {value!r}")
        if (
            not isinstance(self.zone, int)
            or isinstance(self.zone, bool)
            or not 0 <= self.zone <= U16_MAX
        ):
            raise ValueError(f"zone must be an integer in 0..65535, got {self.zone!r}")
        if self.side not in SIDES:
            raise ValueError(f"side must be 'bid' or 'offer', got {self.side!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if not isinstance(self.renewable_only, bool):
            raise ValueError(f"renewable_only must be a boolean, got {self.renewable_only!r}")

    def encode(self) -> bytes:
        """SCALE bytes: u64 u64 u8 u64 u64 u16 u8 u8, little-endian, no padding (37 bytes)."""
        return struct.pack(
            "<QQBQQHBB",
            self.client_order_id,
            self.interval,
            SIDES.index(self.side),
            self.quantity_wh,
            self.price_ticks,
            self.zone,
            SOURCES.index(self.source),
            1 if self.renewable_only else 0,
        )

    @classmethod
    def decode(cls, data: bytes) -> OrderSpec:
        """The inverse of `encode`, from exactly its 37 bytes."""
        if len(data) != 37:
            raise ValueError(f"an encoded OrderSpec is 37 bytes, got {len(data)}")
        cid, interval, side, qty, price, zone, source, ro = struct.unpack("<QQBQQHBB", data)
        if side >= len(SIDES) or source >= len(SOURCES) or ro > 1:
            raise ValueError(f"not an encoded OrderSpec: {data.hex()}")
        return cls(cid, interval, SIDES[side], qty, price, zone, SOURCES[source], ro == 1)

    def to_call_arg(self) -> dict[str, Any]:
        """The value substrate-interface encodes for the pallet's `OrderSpec`."""
        return {
            "client_order_id": self.client_order_id,
            "interval": self.interval,
            "side": to_chain_name(self.side),
            "quantity_wh": self.quantity_wh,
            "price_ticks": self.price_ticks,
            "zone": self.zone,
            "source": to_chain_name(self.source),
            "renewable_only": self.renewable_only,
        }

    @classmethod
    def from_chain(cls, value: dict[str, Any]) -> OrderSpec:
        return cls(
            client_order_id=int(value["client_order_id"]),
            interval=int(value["interval"]),
            side=from_chain_name(value["side"]),
            quantity_wh=int(value["quantity_wh"]),
            price_ticks=int(value["price_ticks"]),
            zone=int(value["zone"]),
            source=from_chain_name(value["source"]),
            renewable_only=bool(value["renewable_only"]),
        )

    def as_dict(self) -> dict[str, Any]:
        # Every field is a plain value, so this is the dict dataclasses.asdict makes, without
        # its deep copies: the API builds it for each order under the order log's write lock.
        return {name: getattr(self, name) for name in _SPEC_FIELDS}


_SPEC_FIELDS = tuple(field.name for field in dataclasses.fields(OrderSpec))
