"""Accounts join the market: the operator registers each in its zone and funds it (bids hold
money, shortfalls are paid), and the distributor, who owns the metering, accredits its meter
with the meter's rated power. The demo's sites, the load test's traders and the tests all
onboard through here. Idempotent: a rerun on the same chain only does what is missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from market import to_chain_name

if TYPE_CHECKING:
    from substrateinterface import Keypair

    from .transactions import Chain


@dataclass(frozen=True)
class Newcomer:
    account: str  # SS58
    zone: int
    fund_units: int  # topped up to this when the free balance is below half of it
    meter: str | None = None  # 0x public key of its meter, accredited when given
    source: str = "solar"  # what its meter measures
    # The meter's rated power, which bounds the energy its readings may claim; the chain
    # accredits no meter without it.
    rated_power_w: int | None = None


def onboard(
    chain: Chain,
    operator: Keypair,
    distributor: Keypair,
    newcomers: Sequence[Newcomer],
    *,
    timeout_s: float = 120,
) -> None:
    """Submit every missing registration, accreditation and transfer at once, then wait for all
    of them; raises ChainError for the first that failed, and ValueError, before submitting
    anything, for a meter without its rated power."""
    for n in newcomers:
        if n.meter is not None and not n.rated_power_w:
            raise ValueError(f"the meter {n.meter} of {n.account} needs its rated_power_w (> 0)")
    known = chain.participants()
    meters = chain.meters()
    txs = []
    for n in newcomers:
        if known.get(n.account) != n.zone:
            txs.append(
                chain.submit_nowait(
                    operator, "register_participant", {"who": n.account, "zone": n.zone}
                )
            )
        if n.meter is not None and n.meter not in meters:
            txs.append(
                chain.submit_nowait(
                    distributor,
                    "accredit_meter",
                    {
                        "meter": n.meter,
                        "owner": n.account,
                        "zone": n.zone,
                        "source": to_chain_name(n.source),
                        "rated_power_w": n.rated_power_w,
                    },
                )
            )
        if chain.balance(n.account).free < n.fund_units // 2:
            txs.append(
                chain.submit_nowait(
                    operator,
                    "transfer_keep_alive",
                    {"dest": n.account, "value": n.fund_units},
                    module="Balances",
                )
            )
    for receipt in chain.wait(txs, timeout_s=timeout_s):
        receipt.raise_for_error()
