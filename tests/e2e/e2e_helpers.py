"""Helpers for the tests that run against a real node."""

from __future__ import annotations

import time

from chain import Chain, ChainError, Newcomer, onboard
from market import UNITS_PER_BRL, keypair, now_ms
from meter_bridge import Accreditation, MeterKey
from meter_bridge.reading import MeterReading, RawReading

OPERATOR = "//Alice"
DISTRIBUTOR = "//Ferdie"  # accredits meters
# The tests' meters are rated 10 MW: the dev chain's intervals last seconds, and the simulated
# sites run hundreds of times faster than real time.
TEST_RATED_W = 10_000_000
RELAYER = "//Bob//stash"  # pays the fees of the readings tests submit themselves


def wait_until(predicate, timeout_s: float, what: str, poll_s: float = 0.25):
    """Poll until predicate() returns something truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def setup_participants(
    chain: Chain,
    uris: list[str],
    zone: int = 0,
    fund_brl: int = 1_000,
    meters: dict[str, str] | None = None,
    rated_power_w: int = TEST_RATED_W,
) -> None:
    """Register (zone) and fund as the operator, and accredit meters (owner uri -> meter public
    key hex) as the distributor."""
    meters = meters or {}
    onboard(
        chain,
        keypair(OPERATOR),
        keypair(DISTRIBUTOR),
        [
            Newcomer(
                keypair(uri).ss58_address,
                zone,
                fund_brl * UNITS_PER_BRL,
                meter=meters.get(uri),
                rated_power_w=rated_power_w,
            )
            for uri in uris
        ],
    )


def wait_for_gate(
    chain: Chain, interval: int, *, finalized: bool = True, timeout_s: float = 60
) -> str:
    """Until a (finalized) block's timestamp has passed the interval's gate closure; returns that
    block's hash."""
    gate = chain.market_params().gate_closure(interval)

    def passed():
        block = chain.finalized_hash() if finalized else chain.block_hash(chain.best_number())
        return block if chain.timestamp_ms(block) >= gate else None

    return wait_until(passed, timeout_s, f"gate closure of interval {interval}")


def accreditation(chain: Chain, key: MeterKey) -> Accreditation:
    """What the meter signs under on this chain now: its genesis hash and the meter's epoch."""
    return Accreditation(chain.genesis_hash, chain.meter_epoch(key.public_key_hex))


def raw(import_wh: int, export_wh: int) -> RawReading:
    return RawReading(
        model="sdm630", import_wh=import_wh, export_wh=export_wh, power_w=0, timestamp_ms=now_ms()
    )


def submit_reading(chain: Chain, reading: MeterReading) -> str | None:
    """Submit a signed reading as the relayer; the pallet's error name, or None if accepted."""
    params = Chain.reading_params(
        reading.meter,
        reading.epoch,
        reading.interval,
        reading.counter,
        reading.import_wh,
        reading.export_wh,
        reading.signature,
    )
    try:
        chain.submit(keypair(RELAYER), "submit_reading", params)
    except ChainError as exc:
        return exc.name
    return None
