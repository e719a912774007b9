"""Settings of a WattChain deployment, in one place, for every worker, the API, ingest and the
command line. Each value comes from, highest first: a command-line option, a `WATTCHAIN_<NAME>`
variable, the operator's TOML file (`--config FILE` or `WATTCHAIN_CONFIG`), the default here.
Example file: docs/wattchain.example.toml."""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import limits
from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# The TOML file of the Settings being built now (pydantic-settings takes sources per class).
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("wattchain_config_file", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATTCHAIN_", frozen=True, extra="forbid")

    data_dir: Path = Path("data")
    node_url: str = "ws://127.0.0.1:9944"
    # The node's RPC as the operator's browser reaches it (the console signs chain actions
    # there); None: node_url, right when the browser runs on the API's machine.
    public_rpc_url: str | None = None
    # Dev-chain roles (genesis.rs), each its own key: Alice is the operator (registers
    # participants), Ferdie the distributor (accredits meters), One the clearing submitter
    # (signs clearings, voids and settlements every interval). The relayer and the
    # meter-reading submitter only pay fees; any funded account will do. Real deployments pass
    # secret URIs from a vault.
    operator_uri: str = "//Alice"
    distributor_uri: str = "//Ferdie"
    submitter_uri: str = "//One"
    relayer_uri: str = "//Dave"
    meter_submitter_uri: str = "//Eve"
    # The API refuses orders whose gate closes sooner than this: time for the relayer to get
    # them into a block (a batch every poll, a block every 2 s on the dev chain; 202 to on
    # chain measured p99 4.6 s unloaded), with a block of slack: three blocks.
    order_margin_ms: int = Field(6_000, ge=0)
    # Orders the API takes per interval (None: up to the chain's MaxOrdersPerInterval). A
    # clearing is priced by its book; a cap keeps every book small enough to clear in a block.
    max_orders_per_interval: int | None = Field(None, ge=1)
    # Open orders one participant may hold in one interval, counted over the relay log and the
    # index (None: no cap). Keeps one participant from filling an interval's book.
    max_open_orders_per_participant: int | None = Field(1_000, ge=1)
    # The largest request body the API reads (413 above it). An order is about 450 bytes.
    max_body_bytes: int = Field(64 * 1024, ge=1_024)
    # Orders one POST /orders/batch may carry (more: the batch is refused whole). Its body may be
    # as large as that many of the largest orders (512 bytes each) when that is above
    # max_body_bytes (the default 100 fits the default 64 KiB).
    max_batch_orders: int = Field(100, ge=1, le=10_000)
    # Rate limits ("<count>/<second|minute|hour>"; None or "off": none), each answered 429 with
    # Retry-After. Per client (IP address), every request; per participant, the orders and
    # cancels its key signed (a batch counts each). Counted per API process. The client's limit
    # sits above the market's intake (1,000 orders/s) so one load-testing machine fits.
    client_rate_limit: str | None = "2000/second"
    participant_rate_limit: str | None = "100/second"
    # Orders per relayed extrinsic (the chain's MaxRelayBatch, 256), and full batches' worth of
    # orders in flight: 12,288, two blocks' worth (a block takes 3,072 to 6,144 by how many
    # traders share a batch: README, "Weights"). Orders free their room when the relayer sees
    # them in a block, and its next batches reach the pool after the next block has begun: with
    # one block's worth, blocks went out full and nearly empty by turns (`make loadtest`; and
    # `wattchain bench chain` with 28 in flight: 4,352 orders, then 2,816 and 2,832). A batch
    # not yet full goes once a slot, just before the next block (offchain/relayer.py). The
    # API's back-pressure promises orders the pace measured on chain, not this product
    # (api/backpressure.py).
    relay_batch: int = Field(256, ge=1)
    relay_in_flight: int = Field(48, ge=1)
    # Participants per `settle_interval` call (the chain's most, 1,000, take about 310 ms of a
    # call's 650: README, "Weights"); the settler halves it for a call the block cannot take.
    # When an interval may settle is the chain's rule (its readings, or the market's reading
    # deadline), not a setting.
    settle_page: int = Field(1_000, ge=1, le=1_000)
    # Matches per page of a clearing; 0: as many as the chain takes (`MaxMatchesPerPage`,
    # 10,000). Smaller pages leave room in each block for other calls.
    clearing_page_matches: int = Field(0, ge=0)
    settle_min_delay_ms: int = Field(2_000, ge=0)
    finality: bool = True  # clearings and settlements wait for finality before counting as done
    # The market's local time zone: times shown to people (web page, demo) are in it.
    timezone: str = "America/Sao_Paulo"
    api_host: str = "127.0.0.1"
    # API processes sharing api_port (uvicorn's workers). One process runs out of a core near
    # 450 orders/s. Each counts its rate limits alone, and sees the others' orders in the relay
    # backlog within a quarter of a second (docs/api.md, "Processes").
    api_processes: int = Field(1, ge=1, le=32)
    api_port: int = Field(8000, ge=0, le=65_535)  # 0: a free port (`wattchain run` prints it)
    # The RPC port of the node that `wattchain run` and `wattchain node` start (0: a free port,
    # printed once the node is up).
    rpc_port: int = Field(9944, ge=0, le=65_535)
    # `wattchain run` restarts a part that dies (after 1 s, doubling up to 30 s) and gives up,
    # stopping everything, when one part has died this many times in a row, each within a
    # minute of starting (0: it never gives up).
    restart_limit: int = Field(10, ge=0)
    # The port where `wattchain workers` serves its Prometheus metrics (relay lag and backlog,
    # clearing progress) at /metrics, on api_host (unset: not served). The API serves its own
    # at /metrics on api_port.
    metrics_port: int | None = Field(None, ge=1, le=65_535)
    # Meter-reading ingest: the sites' JSON ({"sites": [{name, model, host, port, key_uri, ...}]}).
    meter_sites: Path | None = None

    @field_validator("client_rate_limit", "participant_rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("", "none", "off"):
            return None  # from the environment: WATTCHAIN_CLIENT_RATE_LIMIT=off
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate limit (e.g. '100/second', '6000/minute')"
            ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as America/Sao_Paulo)"
            ) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _CONFIG_FILE.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @classmethod
    def from_env(
        cls, config_file: str | os.PathLike[str] | None = None, **overrides: Any
    ) -> Settings:
        """Defaults < the TOML file < WATTCHAIN_* variables < keyword arguments (None values are
        ignored, so unset command-line options fall through)."""
        path = config_file or os.environ.get("WATTCHAIN_CONFIG") or None
        if path is not None and not Path(path).is_file():
            raise ValueError(f"config file {path} does not exist")
        token = _CONFIG_FILE.set(Path(path) if path is not None else None)
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            _CONFIG_FILE.reset(token)

    def with_(self, **changes: Any) -> Settings:
        return self.model_copy(update={k: v for k, v in changes.items() if v is not None})


__all__ = ["Settings"]
