"""Settings of the off-chain side, in one place: command-line options and WATTCHAIN_* variables
both end up here, and every worker and the API take a Settings."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .chain import DEFAULT_URL


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    node_url: str = DEFAULT_URL
    # Dev-chain roles (genesis.rs): Alice is operator and clearing submitter. The relayer only
    # pays fees; any funded account will do. Real deployments pass secret URIs from a vault.
    operator_uri: str = "//Alice"
    relayer_uri: str = "//Dave"
    mechanism: str = "uniform"  # uniform | pay-as-bid | zonal
    # The API refuses orders whose gate closes sooner than this: time for the relayer to get
    # them into a block (a batch every poll, a block every 2 s on the dev chain).
    order_margin_ms: int = 4_000
    # Orders the API takes per interval (None: up to the chain's MaxOrdersPerInterval). A
    # clearing is priced by its book; a cap keeps every book small enough to clear in a block.
    max_orders_per_interval: int | None = None
    relay_batch: int = 128
    relay_in_flight: int = 3
    # Settlement waits for every accredited meter's reading of the interval, or this long
    # after the interval ended (None: two intervals), whichever comes first.
    settle_max_wait_ms: int | None = None
    settle_min_delay_ms: int = 2_000
    finality: bool = True  # clearings and settlements wait for finality before counting as done
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Defaults, overridden by WATTCHAIN_<FIELD> variables, overridden by keyword arguments
        (None values are ignored)."""
        values = {}
        for f in fields(cls):
            raw = os.environ.get(f"WATTCHAIN_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _parse(f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        return cls(**values)

    def with_(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _parse(kind, raw: str):
    kind = str(kind)
    if "bool" in kind:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if "int" in kind:
        return int(raw)
    return raw


__all__ = ["Settings"]
