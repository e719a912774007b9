"""What the API needs to know from the chain to judge an order, with short-lived caches: the
genesis hash (the signed messages bind it), market parameters, participants' zones, free
balances. One node connection, shared by the request threads under a lock."""
from __future__ import annotations

import threading
import time

from offchain.chain import Balance, Chain, MarketParams, ss58


class ChainView:
    def __init__(self, url: str, *, params_ttl_s: float = 5.0, participant_ttl_s: float = 30.0,
                 unknown_ttl_s: float = 1.0, balance_ttl_s: float = 1.0):
        self.chain = Chain(url)
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

    def connect(self, timeout_s: float = 60.0) -> "ChainView":
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

    def params(self) -> MarketParams:
        cached = self._params
        if cached and time.monotonic() - cached[0] < self.params_ttl_s:
            return cached[1]
        with self.lock:
            params = self.chain.market_params()
        self._params = (time.monotonic(), params)
        return params

    def zone_of(self, account: str) -> int | None:
        """The participant's zone, or None if it is not registered."""
        account = ss58(account)
        cached = self._zones.get(account)
        if cached is not None:
            ttl = self.participant_ttl_s if cached[1] is not None else self.unknown_ttl_s
            if time.monotonic() - cached[0] < ttl:
                return cached[1]
        with self.lock:
            zone = self.chain.participant_zone(account)
        self._zones[account] = (time.monotonic(), zone)
        return zone

    def balance(self, account: str, *, fresh: bool = False) -> Balance:
        account = ss58(account)
        cached = self._balances.get(account)
        if not fresh and cached is not None and time.monotonic() - cached[0] < self.balance_ttl_s:
            return cached[1]
        with self.lock:
            balance = self.chain.balance(account)
        self._balances[account] = (time.monotonic(), balance)
        return balance

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
