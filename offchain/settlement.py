"""Settlement after metering: once the chain lets an interval settle, call `settle_interval`
page by page until it is settled, then log the clearing house's report for it.

When an interval may settle is the pallet's rule, not ours (`settlement.rs`): once every
accredited meter of its traders has reported, or at its reading deadline (`reading_window_ms`
after its end), whichever comes first. A trader still missing a reading then is settled on an
estimate (its position counts as delivered or consumed), marked in its line and named in a
`ReadingsEstimated` alert; its meter's next reading trues the estimate up. A payment the chain
could not make is recorded there as a debt and alerted as `SettlementDebt`. A settlement the
chain rejects is recorded with the pallet's error and alerted; `IntervalNotEnded`,
`NotCleared` and `ReadingsOutstanding` only mean "not yet". A voided interval (no valid
clearing by its end) settles too, as if nothing traded.
"""

from __future__ import annotations

import json
import logging

from substrateinterface import Keypair

from chain import PALLET, Chain, ChainError
from market import MarketParams, now_ms, ss58
from market.clearinghouse import summary_line
from store import DataDir, alert, transaction

log = logging.getLogger(__name__)

_NOT_YET = ("IntervalNotEnded", "NotCleared", "ReadingsOutstanding")


class Settler:
    name = "settler"

    def __init__(
        self,
        data: DataDir,
        chain: Chain,
        operator: Keypair,
        *,
        finality: bool = True,
        page: int = 1_000,
        min_delay_ms: int = 2_000,
        timeout_s: float = 120.0,
    ):
        self.data = data
        self.chain = chain
        self.operator = operator
        self.finality = finality
        self.page = page
        self.min_delay_ms = min_delay_ms
        self.timeout_s = timeout_s
        self.ops = data.ops()
        self.reports: dict[int, dict] = {}

    def _params(self) -> MarketParams:
        return self.chain.market_params()

    def candidates(self) -> list[int]:
        """Intervals whose clearing is committed, or that were voided (they settle as if
        nothing traded), and whose settlement is not final yet."""
        return [
            r["interval"]
            for r in self.ops.execute(
                "SELECT DISTINCT c.interval FROM clearing_attempts c"
                " WHERE c.state IN ('committed', 'voided') AND NOT EXISTS"
                " (SELECT 1 FROM settle_attempts s WHERE s.interval = c.interval"
                " AND s.state IN ('committed', 'rejected', 'skipped'))"
                " ORDER BY c.interval"
            )
        ]

    def step(self) -> list[dict]:
        """Settle every interval the chain lets settle now; returns the attempts made."""
        done = []
        params = self._params()
        for interval in self.candidates():
            if now_ms() < params.interval_end(interval) + self.min_delay_ms:
                break  # later intervals end later still
            settled = self.chain.settled_at(interval)
            if settled is not None:
                done.append(
                    self._record(
                        interval,
                        "committed",
                        block_number=settled,
                        error="already settled on chain",
                    )
                )
                continue
            chain_now = self.chain.timestamp_ms()
            if chain_now < params.interval_end(interval):
                continue
            if (
                self.chain.settling(interval) is None
                and self.chain.outstanding_traders(interval) > 0
                # The reading window of the interval's own parameters (they may have changed).
                and chain_now
                < self.chain.market_params(interval=interval).reading_deadline(interval)
            ):
                continue  # the chain waits for its traders' readings
            if self._nothing_to_settle(interval):
                done.append(self._record(interval, "skipped", error="no trades, nothing metered"))
                continue
            done.append(self.settle(interval))
        return done

    def _nothing_to_settle(self, interval: int) -> bool:
        """No trade and no metered energy: every line would be zero, so no extrinsic is spent."""
        clearing = self.chain.clearing(interval)
        return (clearing is None or not clearing.matches) and not int(
            self.chain.query("EnergyTrading", "MeteredCount", [interval]) or 0
        )

    def settle(self, interval: int) -> dict:
        """Calls `settle_interval` a page at a time until the interval is settled; a page the
        block cannot take is halved."""
        page = self.page
        debts: list[dict] = []
        while True:
            try:
                receipt = self.chain.submit(
                    self.operator,
                    "settle_interval",
                    {"interval": interval, "max_participants": page},
                    wait="finality" if self.finality else "inclusion",
                    timeout_s=self.timeout_s,
                )
            except ChainError as exc:
                if exc.name in _NOT_YET:
                    log.info("interval %d: not settled yet (%s)", interval, exc.name)
                    return {"interval": interval, "state": "waiting", "error": exc.name}
                if exc.name == "AlreadySettled":
                    return self._record(interval, "committed", error="already settled on chain")
                if "exhaust" in str(exc).lower() and page > 1:
                    page //= 2
                    log.warning("interval %d: a settlement page too big; now %d", interval, page)
                    continue
                if exc.name in ("Timeout", "Dropped", "Connection"):
                    log.warning(
                        "interval %d: settlement not confirmed (%s); will check again",
                        interval,
                        exc,
                    )
                    return {"interval": interval, "state": "waiting", "error": exc.name}
                log.error("ALERT interval %d: the chain rejected its settlement: %s", interval, exc)
                with transaction(self.ops) as c:
                    alert(
                        c,
                        self.name,
                        "SettlementRejected",
                        f"interval {interval}: {exc.name} {exc.detail}",
                        interval,
                    )
                return self._record(
                    interval,
                    "rejected",
                    error=exc.name,
                    tx_hash=exc.tx_hash,
                    block_hash=exc.block_hash,
                )
            debts += [
                {k: ev.attributes[k] for k in ("debtor", "creditor", "amount")}
                for ev in receipt.find(PALLET, "SettlementDebt")
            ]
            if self.chain.settled_at(interval, receipt.block_hash) is not None:
                break
            progress = self.chain.settling(interval, receipt.block_hash) or {}
            log.info(
                "interval %d: %d participants settled so far",
                interval,
                progress.get("participants", 0),
            )
        missing = self._alert_estimates_and_debts(interval, receipt.block_hash, debts)
        attempt = self._record(
            interval,
            "committed",
            tx_hash=receipt.tx_hash,
            block_hash=receipt.block_hash,
            block_number=receipt.block_number,
            missing=missing,
        )
        try:
            report = self.chain.settlement_report(interval, receipt.block_hash)
            self.reports[interval] = report
            level = logging.INFO if report["balanced"] else logging.ERROR
            log.log(
                level,
                "interval %d settled in block #%d: %s",
                interval,
                receipt.block_number,
                summary_line(report),
            )
            if not report["balanced"]:
                with transaction(self.ops) as c:
                    alert(
                        c,
                        self.name,
                        "Unbalanced",
                        f"interval {interval}: {'; '.join(report['problems'])}",
                        interval,
                    )
        except ChainError as exc:
            log.warning("interval %d: report not built: %s", interval, exc)
        return attempt

    def _alert_estimates_and_debts(
        self, interval: int, block_hash: str, debts: list[dict]
    ) -> list[str]:
        """Alerts for the participants settled on an estimate and the payments recorded as
        debts; returns the meters whose readings were missing."""
        lines = self.chain.settlement_lines(interval, block_hash)
        estimated = sorted(who for who, line in lines.items() if line["estimated"])
        missing = []
        if estimated:  # every meter is read only to name the silent ones
            missing = sorted(
                key
                for key, m in self.chain.meters(block_hash).items()
                if m["owner"] in estimated
                and (m["last"] is None or int(m["last"]["interval"]) < interval)
            )
        with transaction(self.ops) as c:
            if estimated:
                text = (
                    f"interval {interval}: {len(estimated)} participant(s) settled on an"
                    f" estimate, readings missing at the deadline: {', '.join(estimated)}"
                    f" (meters {', '.join(missing) or 'unknown'})"
                )
                log.error("ALERT %s", text)
                alert(c, self.name, "ReadingsEstimated", text, interval)
            for debt in debts:
                text = (
                    f"interval {interval}: {ss58(debt['debtor'])} could not pay"
                    f" {int(debt['amount'])} units to {ss58(debt['creditor'])}; recorded as a debt"
                )
                log.error("ALERT %s", text)
                alert(c, self.name, "SettlementDebt", text, interval)
        return missing

    def _record(
        self,
        interval: int,
        state: str,
        *,
        tx_hash: str | None = None,
        block_hash: str | None = None,
        block_number: int | None = None,
        error: str | None = None,
        missing: list[str] | None = None,
    ) -> dict:
        t = now_ms()
        with transaction(self.ops) as c:
            c.execute(
                "INSERT INTO settle_attempts (interval, state, tx_hash, block_hash, block_number,"
                " error, missing_meters, created_ms, updated_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    interval,
                    state,
                    tx_hash,
                    block_hash,
                    block_number,
                    error,
                    json.dumps(missing or []),
                    t,
                    t,
                ),
            )
        return {
            "interval": interval,
            "state": state,
            "tx_hash": tx_hash,
            "block_hash": block_hash,
            "block_number": block_number,
            "error": error,
        }


__all__ = ["Settler"]
