"""The clearing house's report balances money and energy to zero, the distributor included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from market.clearinghouse import SettlementLine, Trade, build_report

TARIFF, FEED_IN = 95, 30
PEOPLE = ["A", "B", "C", "D"]


def settle(trades, metered):
    """What the pallet's settle_interval computes, per participant."""
    contracted = {}
    for t in trades:
        contracted[t.buyer] = contracted.get(t.buyer, 0) + t.quantity_wh
        contracted[t.seller] = contracted.get(t.seller, 0) - t.quantity_wh
    lines = []
    for who in sorted(set(contracted) | set(metered)):
        c, m = contracted.get(who, 0), metered.get(who, 0)
        imbalance = m - c
        amount = imbalance * (TARIFF if imbalance > 0 else FEED_IN)
        lines.append(SettlementLine(1, who, c, m, imbalance, amount))
    return lines


def test_worked_example():
    trades = [Trade(1, "A", "B", 400, 60, 55), Trade(1, "C", "B", 100, 60, 60)]
    metered = {"A": 450, "B": -480, "C": 100, "D": 50}
    report = build_report(trades, settle(trades, metered), "DIST", [1])
    assert report["balanced"], report["problems"]
    rows = {p["account"]: p for p in report["parties"]}
    assert rows["A"]["paid_for_energy"] == 400 * 60 and rows["A"]["imbalance_paid"] == 50 * TARIFF
    assert rows["B"]["received_for_energy"] == 400 * 55 + 100 * 60
    assert rows["B"]["imbalance_paid"] == 20 * TARIFF  # delivered 480 of the 500 Wh it sold
    assert rows["DIST"]["grid_fees_received"] == 400 * 5
    assert rows["DIST"]["utility_wh"] == -(50 + 20 + 0 + 50)
    assert rows["C"]["utility_wh"] == 0
    assert report["totals"]["net_money"] == 0 and report["totals"]["energy_position_wh"] == 0
    assert rows["DIST"]["role"] == "distributor" and report["parties"][-1]["account"] == "DIST"
    assert rows["B"]["net_money_brl"] == "0.26100"  # 22000 + 6000 - 1900 units


trade = st.builds(
    Trade,
    interval=st.just(1),
    buyer=st.sampled_from(PEOPLE),
    seller=st.sampled_from(PEOPLE),
    quantity_wh=st.integers(1, 10_000),
    buyer_price=st.integers(50, 100),
    seller_price=st.integers(1, 50),
)


@settings(max_examples=200, deadline=None)
@given(
    trades=st.lists(trade, max_size=12),
    metered=st.dictionaries(st.sampled_from(PEOPLE), st.integers(-20_000, 20_000)),
)
def test_money_and_energy_always_balance(trades, metered):
    report = build_report(trades, settle(trades, metered), "DIST", [1])
    assert report["balanced"], report["problems"]
    assert sum(p["net_money"] for p in report["parties"]) == 0
    assert sum(p["energy_position_wh"] for p in report["parties"]) == 0


def test_a_wrong_line_is_reported():
    trades = [Trade(1, "A", "B", 100, 50, 50)]
    lines = settle(trades, {"A": 100, "B": -100})
    lines[0] = SettlementLine(1, "A", 90, 100, 10, 950)  # contracted does not match the trades
    report = build_report(trades, lines, "DIST", [1])
    assert not report["balanced"] and any("contracted" in p for p in report["problems"])
