"""Simulated sites for the demo: prosumers with solar meters and consumers with load meters,
each behind a meter_bridge Modbus simulator, with a simple trading agent and a meter that
signs its readings.

The agent forecasts its next interval from the meter's present net power and offers its
surplus (or bids for its need) through the API client, at a price between the utility's
feed-in rate and its tariff. The readings go to the chain through the ingest worker
(offchain/ingest.py), which reads the same simulators over Modbus.

Time runs `speed` times faster at the sites than on the wall clock, so one 20 s market
interval is a quarter of an hour of solar and load; meters are accredited with their
nameplate power times `speed`, so the pallet's plausibility check still applies.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from substrateinterface import Keypair

from chain import Chain, Newcomer, onboard
from market import MarketParams, keypair
from meter_bridge import MeterKey, read_meter, start_simulator
from meter_bridge.reading import RawReading
from offchain.ingest import MeterSite

log = logging.getLogger(__name__)

MODEL = "sdm630"


@dataclass
class Site:
    name: str
    kind: str  # "prosumer" | "consumer"
    account: Keypair
    meter_key: MeterKey
    zone: int
    nameplate_w: int
    seed: int
    simulator: object = None  # meter_bridge SimulatorHandle
    last_reading: RawReading | None = None

    @property
    def source(self) -> str:
        return "solar" if self.kind == "prosumer" else "grid_mix"

    @property
    def meter_uri(self) -> str:
        return f"//WattChain/meter/{self.name}"

    def rated_power_w(self, speed: float) -> int:
        """What the meter is accredited for: nameplate with headroom, times the site's speed-up."""
        return min(2**32 - 1, int(self.nameplate_w * 1.5 * speed))

    def start(self, speed: float, start_hour: float) -> None:
        self.simulator = start_simulator(
            0,
            MODEL,
            self.kind,
            speed,
            start_hour=start_hour,
            seed=self.seed,
            rated_power_w=self.nameplate_w,
        )

    def meter_site(self, speed: float) -> MeterSite:
        """The site as the ingest worker knows it."""
        return MeterSite(
            name=self.name,
            model=MODEL,
            host=self.simulator.host,
            port=self.simulator.port,
            key_uri=self.meter_uri,
            rated_power_w=self.rated_power_w(speed),
        )

    def stop(self) -> None:
        if self.simulator is not None:
            self.simulator.stop()

    def read(self) -> RawReading:
        self.last_reading = asyncio.run(read_meter(self.simulator.host, self.simulator.port, MODEL))
        return self.last_reading


def make_sites(prosumers: int, consumers: int, *, zones: int = 1, seed: int = 7) -> list[Site]:
    """Dev keys derived from fixed paths (dev chains only), so a rerun finds the same accounts."""
    sites = []
    for i in range(prosumers + consumers):
        kind = "prosumer" if i < prosumers else "consumer"
        name = f"{kind}-{i + 1}"
        sites.append(
            Site(
                name=name,
                kind=kind,
                account=keypair(f"//WattChain/{name}"),
                meter_key=MeterKey.from_uri(f"//WattChain/meter/{kind}-{i + 1}"),
                zone=i % zones,
                nameplate_w=5_000 if kind == "prosumer" else 8_000,
                seed=seed + i,
            )
        )
    return sites


class Agent:
    """A site's trader: one order per interval, sized by a forecast from the meter's power."""

    def __init__(self, site: Site, params: MarketParams, speed: float, seed: int):
        self.site = site
        self.params = params
        self.speed = speed
        self.rng = random.Random(seed)

    def order_for(self, raw: RawReading) -> tuple[str, int, int] | None:
        """(side, quantity_wh, price_ticks) for the next interval, or None if there is nothing
        to trade."""
        hours = self.params.interval_ms / 3_600_000 * self.speed
        energy_wh = int(abs(raw.power_w) * hours)
        if energy_wh < 10:
            return None
        lo, hi = self.params.feed_in_ticks, self.params.utility_tariff_ticks
        spread = max(1, hi - lo)
        if raw.power_w < 0:  # exporting: sell the surplus above the feed-in rate
            side, price = "offer", lo + self.rng.randint(spread // 10, spread * 6 // 10)
        else:  # importing: buy below the tariff
            side, price = "bid", hi - self.rng.randint(spread // 10, spread * 6 // 10)
        price = min(max(price, self.params.min_price_ticks), self.params.max_price_ticks)
        return side, min(energy_wh, self.params.max_quantity_wh), price


def register_sites(
    chain: Chain,
    operator: Keypair,
    distributor: Keypair,
    sites: list[Site],
    *,
    speed: float,
    fund_units: int,
) -> None:
    """The operator registers each site's account and funds it; the distributor accredits its
    meter. Time runs `speed` times faster at the site: so does the energy per interval."""
    onboard(
        chain,
        operator,
        distributor,
        [
            Newcomer(
                site.account.ss58_address,
                site.zone,
                fund_units,
                meter=site.meter_key.public_key_hex,
                source="solar" if site.kind == "prosumer" else "grid_mix",
                rated_power_w=site.rated_power_w(speed),
            )
            for site in sites
        ],
        timeout_s=90,
    )


__all__ = ["Agent", "Site", "make_sites", "register_sites"]
