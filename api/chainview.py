"""What the API needs to know from the chain to judge an order, with short-lived caches: the
genesis hash (the signed messages bind it), market parameters, participants' zones, free
balances, the chain's heads.

A dead or hung node must not stall a request (issue 11, "Node outage freezes the API"):

- Reader threads own the node connections. They connect, and reconnect after a failure, in
  the background with a backoff (0.5 s doubling to 5 s); no request ever connects.
- A request that needs a value older than its cache time asks a reader and waits at most
  `read_timeout_s` (1 s). No lock is held while it waits: the readers take jobs from a queue,
  and concurrent requests for the same value share one read.
- When the node cannot answer (unreachable, or no answer in time) the last value read is
  served, and `node_reachable` turns false until a reader reads again. With nothing read yet,
  the call raises ChainUnavailable at once (the API answers 503 with Retry-After).
- A cached value asked for in the last quarter of its cache time is read again in the
  background and served meanwhile (REFRESH_AT): a value in steady use, such as a bidder's
  balance, never makes a request wait for the node. Under `make loadtest` the groups of orders
  that waited for such a read were held up to 100 ms.
- An idle reader reads the chain's heads every `probe_s`: that keeps `/market`'s blocks fresh
  and notices a node that went away while nobody asked.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from chain import Balance, Chain, ChainUnavailable, settle_heap
from chain.errors import CONNECTION_ERRORS
from market import MarketParams, now_ms, ss58

from .metrics import NODE_REACHABLE, STALE_ANSWERS

log = logging.getLogger(__name__)

REFRESH_AT = 0.75  # of a value's cache time: from then on, a request for it reads it anew
_PARAMS: tuple = ("params",)
_HEADS: tuple = ("heads",)


@dataclass
class _Job:
    key: Hashable
    fetch: Callable[[Chain], Any]
    future: Future
    cache: bool


@dataclass
class MarketView:
    """What `GET /market` shows of the chain, and whether it is the last known rather than
    read just now."""

    genesis_hash: bytes
    params: MarketParams
    max_intervals_ahead: int
    heads: dict
    node_reachable: bool
    stale: bool


def _open_chain(url: str, rpc_timeout_s: float) -> Chain:
    # One attempt per call (the reader retries with its own backoff), no reconnecting inside a
    # read, and a socket timeout so a node that accepts and never answers fails the read.
    return Chain(url, connect_timeout_s=0, rpc_timeout_s=rpc_timeout_s, retry_s=0)


class ChainView:
    def __init__(
        self,
        url: str,
        *,
        read_timeout_s: float = 1.0,
        rpc_timeout_s: float = 5.0,
        readers: int = 2,
        params_ttl_s: float = 5.0,
        participant_ttl_s: float = 30.0,
        unknown_ttl_s: float = 1.0,
        balance_ttl_s: float = 1.0,
        heads_ttl_s: float = 2.0,
        probe_s: float = 1.0,
        backoff_s: tuple[float, float] = (0.5, 5.0),
        open_chain: Callable[[str, float], Chain] = _open_chain,
    ):
        self.url = url
        self.read_timeout_s = read_timeout_s
        self.rpc_timeout_s = rpc_timeout_s
        self.readers = max(1, readers)
        self.params_ttl_s = params_ttl_s
        self.participant_ttl_s = participant_ttl_s
        self.unknown_ttl_s = unknown_ttl_s
        self.balance_ttl_s = balance_ttl_s
        self.heads_ttl_s = heads_ttl_s
        self.probe_s = probe_s
        self.backoff_s = backoff_s
        self._open_chain = open_chain
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # Makes a look-up and an update of these dicts one step (one read per value at a time);
        # never held across I/O.
        self._guard = threading.Lock()
        self._inflight: dict[Hashable, Future] = {}
        self._cache: dict[Hashable, tuple[float, Any]] = {}
        self._genesis: bytes | None = None
        self._max_ahead: int | None = None
        self._block_ms: int | None = None
        self._reachable = False
        self._connected_once = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_warning = 0.0
        self.last_ok_ms: int | None = None  # unix ms of the last successful read
        self.last_error: str | None = None
        self.stale_answers = 0  # values served from the cache because the node did not answer

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, wait_s: float = 0.0) -> ChainView:
        """Start the readers; wait up to `wait_s` for a first connection (and go on without one:
        requests then get 503 until a reader connects)."""
        if not self._threads:
            for i in range(self.readers):
                t = threading.Thread(
                    target=self._reader, name=f"wattchain-chainview-{i}", daemon=True
                )
                t.start()
                self._threads.append(t)
        if wait_s > 0 and not self._connected_once.wait(wait_s):
            log.warning(
                "node at %s not reachable after %.0f s (%s); serving without it, reconnecting "
                "in the background",
                self.url,
                wait_s,
                self.last_error,
            )
        return self

    def close(self) -> None:
        self._stop.set()
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + 1.0
        for t in self._threads:  # a reader stuck in a read is a daemon: it does not hold exit
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    @property
    def node_reachable(self) -> bool:
        """False while the node cannot be read: the values served are then the last read."""
        return self._reachable

    # -- the readers -------------------------------------------------------------------------
    def _reader(self) -> None:
        chain: Chain | None = None
        delay = self.backoff_s[0]
        while not self._stop.is_set():
            if chain is None:
                try:
                    chain = self._connect()
                    delay = self.backoff_s[0]
                except Exception as exc:  # whatever a half-open node throws: retry later
                    self._failed(f"cannot connect to {self.url}: {exc}")
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.backoff_s[1])
                    continue
            try:
                job = self._jobs.get(timeout=self.probe_s)
            except queue.Empty:
                job = _Job(_HEADS, _heads, Future(), True)  # the probe
            if job is None:
                break
            if not job.future.set_running_or_notify_cancel():
                self._forget(job)  # its requesters gave up before a reader was free
                continue
            try:
                value = job.fetch(chain)
            except (ChainUnavailable, *CONNECTION_ERRORS) as exc:
                if not isinstance(exc, ChainUnavailable):
                    exc = ChainUnavailable(f"node at {self.url} unreachable: {exc}")
                self._failed(exc.detail)
                self._finish(job, exc=exc)
                chain.close()
                chain = None
            except Exception as exc:  # not the connection: the request sees it
                self._finish(job, exc=exc)
            else:
                self._ok()
                self._finish(job, value=value)
        if chain is not None:
            chain.close()

    def _connect(self) -> Chain:
        chain = self._open_chain(self.url, self.rpc_timeout_s)
        try:
            chain.connect(timeout_s=0)
            genesis = chain.genesis_hash
            max_ahead = int(chain.constant("EnergyTrading", "MaxIntervalsAhead"))
            block_ms = chain.block_ms()
        except BaseException:
            chain.close()
            raise
        with self._guard:
            if self._genesis is not None and genesis != self._genesis:
                log.warning(
                    "node at %s serves a new chain (genesis changed): cache dropped", self.url
                )
                self._cache.clear()
            self._genesis, self._max_ahead, self._block_ms = genesis, max_ahead, block_ms
        settle_heap()  # its metadata, out of the collector's full passes
        self._ok()
        self._connected_once.set()
        log.info("connected to the node at %s", self.url)
        return chain

    def _forget(self, job: _Job) -> None:
        with self._guard:
            if self._inflight.get(job.key) is job.future:
                del self._inflight[job.key]

    def _finish(self, job: _Job, *, value: Any = None, exc: BaseException | None = None) -> None:
        if exc is None and job.cache:
            self._cache[job.key] = (time.monotonic(), value)
        self._forget(job)
        if exc is None:
            job.future.set_result(value)
        else:
            job.future.set_exception(exc)

    def _ok(self) -> None:
        if not self._reachable:
            if self._connected_once.is_set():
                log.info("node at %s answers again", self.url)
            NODE_REACHABLE.set(1)
        self._reachable = True
        self.last_ok_ms = now_ms()

    def _failed(self, why: str) -> None:
        if self._reachable:
            log.warning("%s; serving cached values, reconnecting in the background", why)
            NODE_REACHABLE.set(0)
        self._reachable = False
        self.last_error = why

    # -- the request path --------------------------------------------------------------------
    def _read(
        self,
        key: Hashable,
        fetch: Callable[[Chain], Any],
        ttl_s: float | Callable[[Any], float],
        *,
        cache: bool = True,
    ) -> tuple[Any, bool]:
        """(value, fresh): a cached value younger than its ttl, else a read by a reader within
        read_timeout_s, else the last value read (fresh=False), else ChainUnavailable. A cached
        value asked for past REFRESH_AT of its ttl is served, and read again in the background."""
        cached = self._cache.get(key)
        if cached is not None:
            ttl = ttl_s(cached[1]) if callable(ttl_s) else ttl_s
            age = time.monotonic() - cached[0]
            if age < ttl:
                if cache and age >= ttl * REFRESH_AT and self._reachable:
                    self._reading(key, fetch, cache)
                return cached[1], True
        if not self._reachable:
            return self._fallback(key, cached, f"the node at {self.url} is unreachable")
        future = self._reading(key, fetch, cache)
        try:
            return future.result(timeout=self.read_timeout_s), True
        except FutureTimeout:
            if future.cancel():  # still queued: the readers are busy, the node may be fine
                why = f"no reader free within {self.read_timeout_s} s"
            else:
                why = f"the node at {self.url} did not answer within {self.read_timeout_s} s"
                self._failed(why)
            return self._fallback(key, cached, why)
        except CancelledError:  # another request sharing this read gave up on it
            return self._fallback(key, cached, "the read was given up")
        except ChainUnavailable as exc:
            return self._fallback(key, cached, str(exc))

    def _reading(self, key: Hashable, fetch: Callable[[Chain], Any], cache: bool) -> Future:
        """The read of `key` under way, or a new one handed to the readers."""
        with self._guard:
            future = self._inflight.get(key)
            if future is None or future.done():
                future = Future()
                self._inflight[key] = future
                self._jobs.put(_Job(key, fetch, future, cache))
        return future

    def _fallback(self, key: Hashable, cached: tuple[float, Any] | None, why: str):
        if cached is None:
            raise ChainUnavailable(f"{why}, and the API has no {key[0]} read before")
        self.stale_answers += 1
        STALE_ANSWERS.inc()
        if time.monotonic() - self._last_warning > 10:
            self._last_warning = time.monotonic()
            log.warning(
                "%s: serving the %s read %.0f s ago", why, key[0], time.monotonic() - cached[0]
            )
        return cached[1], False

    @property
    def genesis_hash(self) -> bytes:
        if self._genesis is None:
            raise ChainUnavailable(
                f"the API has not reached the node at {self.url} yet (genesis hash unknown)"
            )
        return self._genesis

    @property
    def max_intervals_ahead(self) -> int:
        if self._max_ahead is None:
            raise ChainUnavailable(f"the API has not reached the node at {self.url} yet")
        return self._max_ahead

    @property
    def block_ms(self) -> int:
        """The chain's block time (its Aura slot), in ms."""
        if self._block_ms is None:
            raise ChainUnavailable(f"the API has not reached the node at {self.url} yet")
        return self._block_ms

    def params(self) -> MarketParams:
        return self._read(_PARAMS, lambda c: c.market_params(), self.params_ttl_s)[0]

    def zone_of(self, account: str) -> int | None:
        """The participant's zone, or None if it is not registered."""
        account = ss58(account)

        def ttl(zone: int | None) -> float:
            return self.participant_ttl_s if zone is not None else self.unknown_ttl_s

        return self._read(("zone", account), lambda c: c.participant_zone(account), ttl)[0]

    def meters_of_source(self, account: str, source: str) -> int:
        """How many accredited meters of the account measure `source`."""
        account = ss58(account)

        def ttl(count: int) -> float:
            return self.participant_ttl_s if count else self.unknown_ttl_s

        return self._read(
            ("meters", account, source), lambda c: c.meters_of_source(account, source), ttl
        )[0]

    def balance(self, account: str, *, fresh: bool = False) -> Balance:
        account = ss58(account)
        ttl = 0.0 if fresh else self.balance_ttl_s
        return self._read(("balance", account), lambda c: c.balance(account), ttl)[0]

    def energy_balance(self, account: str) -> int:
        """Live only: no cached value is served (ChainUnavailable when the node cannot say)."""
        account = ss58(account)
        value, _ = self._read(
            ("energy", account), lambda c: c.energy_balance(account), 0.0, cache=False
        )
        return value

    def heads(self) -> dict:
        """best_block, finalized_block, chain_time_ms (the last read when the node is away)."""
        return self._read(_HEADS, _heads, self.heads_ttl_s)[0]

    def market_view(self) -> MarketView:
        params, params_fresh = self._read(_PARAMS, lambda c: c.market_params(), self.params_ttl_s)
        genesis, max_ahead = self.genesis_hash, self.max_intervals_ahead
        try:
            heads, heads_fresh = self._read(_HEADS, _heads, self.heads_ttl_s)
        except ChainUnavailable:
            heads, heads_fresh = {}, False
        reachable = self._reachable
        return MarketView(
            genesis,
            params,
            max_ahead,
            heads,
            reachable,
            not (reachable and params_fresh and heads_fresh),
        )


def _heads(chain: Chain) -> dict:
    best = chain.best_number()
    finalized = chain.finalized_number()
    return {"best_block": best, "finalized_block": finalized, "chain_time_ms": chain.timestamp_ms()}


__all__ = ["ChainView", "MarketView"]
