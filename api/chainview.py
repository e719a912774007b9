"""What the API needs to know from the chain to judge an order, with short-lived caches: the
genesis hash (the signed messages bind it), market parameters, participants' zones, free
balances. One node connection, shared by the request threads under a lock.

While the node is unreachable the last known values are used, so orders can still be taken
(and logged for the relayer); with nothing known yet, a call raises ChainUnavailable (503)."""

from __future__ import annotations

import logging
import threading
import time

from chain import Balance, Chain, ChainUnavailable
from market import MarketParams, ss58

log = logging.getLogger(__name__)


class ChainView:
    def __init__(
        self,
        url: str,
        *,
        params_ttl_s: float = 5.0,
        participant_ttl_s: float = 30.0,
        unknown_ttl_s: float = 1.0,
        balance_ttl_s: float = 1.0,
        retry_s: float = 3.0,
    ):
        # A request should not hang on a dead node for long: a short retry, then stale values.
        self.chain = Chain(url, retry_s=retry_s)
        self.lock = threading.RLock()
        self.params_ttl_s = params_ttl_s
        self.participant_ttl_s = participant_ttl_s
        self.unknown_ttl_s = unknown_ttl_s
        self.balance_ttl_s = balance_ttl_s
        self._params: tuple[float, MarketParams] | None = None
        self._zones: dict[str, tuple[float, int | None]] = {}
        self._balances: dict[str, tuple[float, Balance]] = {}
        self._genesis: bytes | None = None
        self._max_ahead: int | None = None

    def connect(self, timeout_s: float = 60.0) -> ChainView:
        with self.lock:
            self.chain.connect(timeout_s)
            self._genesis = self.chain.genesis_hash
            self._max_ahead = int(self.chain.constant("EnergyTrading", "MaxIntervalsAhead"))
        return self

    def close(self) -> None:
        with self.lock:
            self.chain.close()

    @property
    def genesis_hash(self) -> bytes:
        if self._genesis is None:
            self.connect()
        return self._genesis

    @property
    def max_intervals_ahead(self) -> int:
        if self._max_ahead is None:
            self.connect()
        return self._max_ahead

    def _cached(self, cached, ttl: float, fetch):
        """A fresh value, or the stale one when the node cannot be reached."""
        if cached is not None and time.monotonic() - cached[0] < ttl:
            return cached[1], None
        try:
            with self.lock:
                return fetch(), time.monotonic()
        except ChainUnavailable:
            if cached is None:
                raise
            log.warning("node unreachable: using a value %.0f s old", time.monotonic() - cached[0])
            return cached[1], None

    def params(self) -> MarketParams:
        value, at = self._cached(self._params, self.params_ttl_s, self.chain.market_params)
        if at is not None:
            self._params = (at, value)
        return value

    def zone_of(self, account: str) -> int | None:
        """The participant's zone, or None if it is not registered."""
        account = ss58(account)
        cached = self._zones.get(account)
        ttl = (
            self.participant_ttl_s
            if cached is not None and cached[1] is not None
            else self.unknown_ttl_s
        )
        value, at = self._cached(cached, ttl, lambda: self.chain.participant_zone(account))
        if at is not None:
            self._zones[account] = (at, value)
        return value

    def balance(self, account: str, *, fresh: bool = False) -> Balance:
        account = ss58(account)
        cached = self._balances.get(account)
        value, at = self._cached(
            cached, 0.0 if fresh else self.balance_ttl_s, lambda: self.chain.balance(account)
        )
        if at is not None:
            self._balances[account] = (at, value)
        return value

    def energy_balance(self, account: str) -> int:
        with self.lock:
            return self.chain.energy_balance(account)

    def heads(self) -> dict:
        with self.lock:
            best = self.chain.best_number()
            finalized = self.chain.finalized_number()
            ts = self.chain.timestamp_ms()
        return {"best_block": best, "finalized_block": finalized, "chain_time_ms": ts}


__all__ = ["ChainView"]
