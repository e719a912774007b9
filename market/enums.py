"""The market's enums and their one mapping to the pallet's variant names.

Our names (`bid`, `grid_mix`, `pay-as-bid`) are what the API, the stores and the matcher use;
the pallet's (`Bid`, `GridMix`, `PayAsBid`) appear only at the chain boundary. The order of
each tuple is the SCALE variant index (docs/chain-interface.md, "Enums")."""

from __future__ import annotations

from typing import Any, Literal

SIDES = ("bid", "offer")
SOURCES = ("solar", "wind", "hydro", "biomass", "grid_mix")
MECHANISMS = ("uniform", "pay-as-bid", "zonal")
Mechanism = Literal["uniform", "pay-as-bid", "zonal"]

_CHAIN_NAMES: dict[str, str] = {
    "bid": "Bid",
    "offer": "Offer",
    "solar": "Solar",
    "wind": "Wind",
    "hydro": "Hydro",
    "biomass": "Biomass",
    "grid_mix": "GridMix",
    "uniform": "Uniform",
    "pay-as-bid": "PayAsBid",
    "zonal": "Zonal",
}
_OUR_NAMES = {chain: ours for ours, chain in _CHAIN_NAMES.items()}


def to_chain_name(name: str) -> str:
    """`grid_mix` -> `GridMix`. Raises ValueError for a name that is not one of ours."""
    try:
        return _CHAIN_NAMES[name]
    except KeyError:
        raise ValueError(f"unknown market enum value {name!r}") from None


def from_chain_name(value: Any) -> str:
    """`GridMix` (or `{"GridMix": None}`, as a unit variant may decode) -> `grid_mix`."""
    if isinstance(value, dict):
        (value,) = value.keys()
    try:
        return _OUR_NAMES[value]
    except (KeyError, TypeError):
        raise ValueError(f"unknown variant {value!r}") from None
