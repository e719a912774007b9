"""The clearing house's report: per participant and period, money in BRL and energy in Wh, with
the distributor as the balancing party, so that both columns add up to zero.

Energy: a trade moves `q` Wh from seller to buyer; settlement moves each participant's
imbalance (metered minus contracted) between it and the utility (the distributor). A
participant's position (bought - sold + imbalance) therefore equals its metered net import,
and the positions of all parties, the utility's included, sum to zero.

Money (units of 1/1000 tick; 1 BRL = 100 ticks = 100_000 units): the buyer pays
`buyer_price * q`, the seller gets `seller_price * q`, the distributor the difference (grid fee
and congestion rent); an imbalance is paid to the distributor at the tariff (shortfall) or by it
at the feed-in rate (surplus). Every payment has a payer and a payee in the report, so the
parties' net amounts sum to zero.

Pure functions of their inputs: the settler builds the report from the chain
(offchain/settlement.py), the API and the CLI from the index (store/queries.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .units import UNITS_PER_BRL, units_to_brl


@dataclass(frozen=True)
class Trade:
    interval: int
    buyer: str
    seller: str
    quantity_wh: int
    buyer_price: int
    seller_price: int


@dataclass(frozen=True)
class SettlementLine:
    interval: int
    account: str
    contracted_wh: int
    metered_wh: int
    imbalance_wh: int
    amount: int  # units the participant paid (> 0) or received (< 0) for its imbalance
    estimated: bool = False  # a meter had not reported by the reading deadline
    trued_up_wh: int = 0  # earlier estimates and late readings taken into metered_wh


def _blank(account: str, role: str) -> dict[str, Any]:
    return {
        "account": account,
        "role": role,
        "bought_wh": 0,
        "sold_wh": 0,
        "contracted_wh": 0,
        "metered_wh": 0,
        "imbalance_wh": 0,
        "estimated_lines": 0,  # lines whose metered energy is an estimate (a meter was late)
        "trued_up_wh": 0,  # earlier estimates and late readings taken into metered_wh
        "utility_wh": 0,
        "energy_position_wh": 0,
        "paid_for_energy": 0,
        "received_for_energy": 0,
        "grid_fees_received": 0,
        "imbalance_paid": 0,
        "imbalance_received": 0,
        "net_money": 0,
    }


def build_report(
    trades: Iterable[Trade],
    lines: Iterable[SettlementLine],
    distributor: str | None,
    intervals: Iterable[int],
) -> dict[str, Any]:
    """The report over `intervals` (the period). Money fields are integers in units, each with
    a `_brl` twin; `balanced` says both totals are zero and every participant's energy
    position equals its metered energy."""
    intervals = sorted(set(intervals))
    parties: dict[str, dict[str, Any]] = {}
    util = distributor or "utility"

    def party(account: str) -> dict[str, Any]:
        if account not in parties:
            parties[account] = _blank(account, "distributor" if account == util else "participant")
        return parties[account]

    party(util)
    for t in trades:
        cost = t.buyer_price * t.quantity_wh
        proceeds = t.seller_price * t.quantity_wh
        buyer, seller = party(t.buyer), party(t.seller)
        buyer["bought_wh"] += t.quantity_wh
        buyer["paid_for_energy"] += cost
        seller["sold_wh"] += t.quantity_wh
        seller["received_for_energy"] += proceeds
        party(util)["grid_fees_received"] += cost - proceeds
    for line in lines:
        p = party(line.account)
        p["contracted_wh"] += line.contracted_wh
        p["metered_wh"] += line.metered_wh
        p["imbalance_wh"] += line.imbalance_wh
        p["estimated_lines"] += int(line.estimated)
        p["trued_up_wh"] += line.trued_up_wh
        p["utility_wh"] += line.imbalance_wh
        party(util)["utility_wh"] -= line.imbalance_wh
        if line.amount >= 0:
            p["imbalance_paid"] += line.amount
            party(util)["imbalance_received"] += line.amount
        else:
            p["imbalance_received"] += -line.amount
            party(util)["imbalance_paid"] += -line.amount
    problems = []
    for p in parties.values():
        p["energy_position_wh"] = p["bought_wh"] - p["sold_wh"] + p["utility_wh"]
        p["net_money"] = (
            p["received_for_energy"]
            + p["grid_fees_received"]
            + p["imbalance_received"]
            - p["paid_for_energy"]
            - p["imbalance_paid"]
        )
        if p["role"] == "participant":
            if p["contracted_wh"] != p["bought_wh"] - p["sold_wh"]:
                problems.append(
                    f"{p['account']}: contracted {p['contracted_wh']} Wh on chain, "
                    f"{p['bought_wh'] - p['sold_wh']} Wh from trades"
                )
            if p["energy_position_wh"] != p["metered_wh"]:
                problems.append(
                    f"{p['account']}: position {p['energy_position_wh']} Wh"
                    f" != metered {p['metered_wh']} Wh"
                )
        for key in (
            "paid_for_energy",
            "received_for_energy",
            "grid_fees_received",
            "imbalance_paid",
            "imbalance_received",
            "net_money",
        ):
            p[f"{key}_brl"] = units_to_brl(p[key])
    money_total = sum(p["net_money"] for p in parties.values())
    energy_total = sum(p["energy_position_wh"] for p in parties.values())
    market_energy = sum(p["bought_wh"] - p["sold_wh"] for p in parties.values())
    if money_total:
        problems.append(f"money does not balance: {money_total} units")
    if energy_total:
        problems.append(f"energy does not balance: {energy_total} Wh")
    ordered = sorted(parties.values(), key=lambda p: (p["role"] == "distributor", p["account"]))
    return {
        "period": {
            "from_interval": intervals[0] if intervals else None,
            "to_interval": intervals[-1] if intervals else None,
            "intervals": intervals,
        },
        "currency": "BRL",
        "units_per_brl": UNITS_PER_BRL,
        "distributor": util,
        "parties": ordered,
        "totals": {
            "net_money": money_total,
            "net_money_brl": units_to_brl(money_total),
            "energy_position_wh": energy_total,
            "market_energy_wh": market_energy,
            "traded_wh": sum(p["bought_wh"] for p in parties.values()),
            "shortfall_wh": sum(
                max(0, p["utility_wh"]) for p in parties.values() if p["role"] == "participant"
            ),
            "surplus_wh": sum(
                max(0, -p["utility_wh"]) for p in parties.values() if p["role"] == "participant"
            ),
        },
        "balanced": not problems,
        "problems": problems,
    }


def summary_line(report: dict[str, Any]) -> str:
    t = report["totals"]
    return (
        f"{len(report['parties']) - 1} participants, traded {t['traded_wh']} Wh, utility shortfall "
        f"{t['shortfall_wh']} Wh / surplus {t['surplus_wh']} Wh, "
        f"money sum {t['net_money_brl']} BRL, energy sum {t['energy_position_wh']} Wh, "
        f"{'balanced' if report['balanced'] else 'NOT BALANCED'}"
    )


__all__ = ["SettlementLine", "Trade", "build_report", "summary_line"]
