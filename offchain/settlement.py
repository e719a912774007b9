"""Settlement after metering: once an interval has ended and its readings are in, call
`settle_interval`, then log the clearing house's report for it.

"Readings are in" means every accredited meter has a reading for the interval (its last
registers are for that interval or later); a meter that stays silent delays settlement by at
most `max_wait_ms` after the interval's end, and is then named in an alert (its owner is
settled on what was metered, the rest of its energy is not). A settlement the chain rejects is
recorded with the pallet's error and alerted; `IntervalNotEnded` and `NotCleared` only mean
"not yet". A voided interval (no valid clearing by its end) settles too, as if nothing traded.
"""

from __future__ import annotations

import json
import logging

from substrateinterface import Keypair

from chain import Chain, ChainError
from market import MarketParams, now_ms
from market.clearinghouse import summary_line
from store import DataDir, alert, transaction

log = logging.getLogger(__name__)

_NOT_YET = ("IntervalNotEnded", "NotCleared")


class Settler:
    name = "settler"

    def __init__(
        self,
        data: DataDir,
        chain: Chain,
        operator: Keypair,
        *,
        finality: bool = True,
        max_wait_ms: int | None = None,
        min_delay_ms: int = 2_000,
        timeout_s: float = 120.0,
    ):
        self.data = data
        self.chain = chain
        self.operator = operator
        self.finality = finality
        self.max_wait_ms = max_wait_ms
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

    def missing_meters(self, interval: int) -> list[str]:
        return sorted(
            key
            for key, m in self.chain.meters().items()
            if m["last"] is None or int(m["last"]["interval"]) < interval
        )

    def step(self) -> list[dict]:
        """Settle every interval that is ready; returns the attempts made."""
        done = []
        params = self._params()
        max_wait = self.max_wait_ms if self.max_wait_ms is not None else 2 * params.interval_ms
        for interval in self.candidates():
            end = params.interval_end(interval)
            now = now_ms()
            if now < end + self.min_delay_ms:
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
            missing = self.missing_meters(interval)
            if missing and now < end + max_wait:
                continue
            if self.chain.timestamp_ms() < end:
                continue
            if self._nothing_to_settle(interval):
                done.append(self._record(interval, "skipped", error="no trades, nothing metered"))
                continue
            done.append(self.settle(interval, missing))
        return done

    def _nothing_to_settle(self, interval: int) -> bool:
        """No trade and no metered energy: every line would be zero, so no extrinsic is spent."""
        clearing = self.chain.clearing(interval)
        return (clearing is None or not clearing.matches) and not int(
            self.chain.query("EnergyTrading", "MeteredCount", [interval]) or 0
        )

    def settle(self, interval: int, missing: list[str] | None = None) -> dict:
        missing = missing or []
        if missing:
            text = (
                f"interval {interval}: settling without readings of {len(missing)} meter(s): "
                f"{', '.join(missing)}"
            )
            log.error("ALERT %s", text)
            with transaction(self.ops) as c:
                alert(c, self.name, "ReadingsMissing", text, interval)
        try:
            receipt = self.chain.submit(
                self.operator,
                "settle_interval",
                self.chain.settlement_params(interval),
                wait="finality" if self.finality else "inclusion",
                timeout_s=self.timeout_s,
            )
        except ChainError as exc:
            if exc.name in _NOT_YET:
                log.info("interval %d: not settled yet (%s)", interval, exc.name)
                return {"interval": interval, "state": "waiting", "error": exc.name}
            if exc.name == "AlreadySettled":
                return self._record(interval, "committed", error="already settled on chain")
            if exc.name in ("Timeout", "Dropped", "Connection"):
                log.warning(
                    "interval %d: settlement not confirmed (%s); will check again", interval, exc
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
                missing=missing,
            )
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
