"""Helpers for the tests that run against a real node."""
from __future__ import annotations

import time

from offchain.chain import UNITS_PER_BRL, Chain, keypair

OPERATOR = "//Alice"


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


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def setup_participants(chain: Chain, uris: list[str], zone: int = 0, fund_brl: int = 1_000,
                       meters: dict[str, str] | None = None, rated_power_w: int = 0) -> None:
    """Register (zone), fund and accredit meters (owner uri -> meter public key hex), as the operator."""
    operator = keypair(OPERATOR)
    known = chain.participants()
    accredited = chain.meters()
    txs = []
    for uri in uris:
        account = keypair(uri).ss58_address
        if known.get(account) != zone:
            txs.append(chain.submit_nowait(operator, "register_participant", {"who": account, "zone": zone}))
        if chain.balance(account).free < fund_brl * UNITS_PER_BRL // 2:
            txs.append(chain.submit_nowait(operator, "transfer_keep_alive",
                                           {"dest": account, "value": fund_brl * UNITS_PER_BRL}, module="Balances"))
    for uri, meter in (meters or {}).items():
        if meter not in accredited:
            txs.append(chain.submit_nowait(operator, "accredit_meter", {
                "meter": meter, "owner": keypair(uri).ss58_address, "zone": zone, "source": "Solar",
                "rated_power_w": rated_power_w}))
    for receipt in chain.wait(txs, timeout_s=120):
        receipt.raise_for_error()


def wait_for_gate(chain: Chain, interval: int, *, finalized: bool = True, timeout_s: float = 60) -> str:
    """Until a (finalized) block's timestamp has passed the interval's gate closure; returns that block's hash."""
    gate = chain.market_params().gate_closure(interval)

    def passed():
        block = chain.finalized_hash() if finalized else chain.block_hash(chain.best_number())
        return block if chain.timestamp_ms(block) >= gate else None

    return wait_until(passed, timeout_s, f"gate closure of interval {interval}")
