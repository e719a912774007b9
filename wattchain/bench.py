"""`wattchain bench api` (`make loadtest`): order intake under load, end to end, on this machine.

It starts a market of its own (a fresh dev node, the workers, the API) on free loopback ports,
registers and funds the traders in one batch of extrinsics, signs every order before the run,
then runs Locust headless (`load_tests/intake.py`: FastHttpUser, ramp, hold, a burst before a
gate) against the API. Afterwards it follows every acknowledged order to the chain through the
relay log, and prints one JSON line:

- `held_orders_per_s`: 202s per second over the hold, the rate sustained (what
  `--min-orders-per-s` checks); `orders_per_s` over the whole run, ramp and burst included;
  `p50_ms`, `p99_ms` of an order's answer (with `--batch-share`, aggregators send that
  share of the orders in POST /orders/batch: each figure is then the larger of the single
  orders' and the batches', whose own figures are in `by_request`);
- `acknowledged`, `on_chain`, `lost` (acknowledged, never on chain: a late rejection counts
  here), `duplicated` (an (owner, client order id) placed twice on chain), `failures`
  (answers other than 202 and the honest refusals), `refused` (503 RelayBacklog, 429
  RateLimited, by reason);
- `relay_lag_p99_blocks`: blocks from the one whose slot had begun at an order's 202 to the
  one that included it (1: the next block), from the chain's block timestamps;
  `relay_lag_p99_s`: from the 202 to the relayer seeing the order in a block (what `GET
  /orders/{owner}/{id}` shows as `onchain`); `cpu_api_pct` (of one core, over the run, the
  API's restarts and worker processes included);
- `restarts`: how often the supervisor restarted each part; with `--kill`, `kills`: each
  part killed (SIGKILL, once, spread over the hold), when (`at_s`, seconds into the run), how
  long it took to be back (`back_after_s`, null if it never was) and what the load saw
  meanwhile (`while_down`: answers by status, `acknowledged_while_down`).

The market runs as `wattchain run` runs it (`processes.start_market`: the node's chain in the
data folder, every part supervised and restarted), so a killed part comes back. An order counts
as on chain once the index has it from a finalized block, not only when the relayer saw it in a
block: a node killed with a block not yet written loses that block.

It exits 1 when a figure misses a threshold it was given (`--min-orders-per-s`, `--max-p99-ms`,
`--max-lost`, ...) or a killed part did not come back. The market's data folder is kept when
`--data` is given.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from api.client import fresh_client_order_id, order_body
from chain import Chain, Newcomer, onboard
from market import UNITS_PER_BRL, OrderSpec, keypair, now_ms, ss58
from market.settings import Settings
from meter_bridge import MeterKey
from meter_bridge.registers import SDM630
from store import DataDir, OrderLog

from .processes import REPO_ROOT, Market, start_market

KILLABLE = ("api", "workers", "node")
# A part not back this long after its kill is a failure of the run.
BACK_TIMEOUT_S = 120.0
# After a killed API answers again, the load's pooled connections to the dead one may still
# fail for a moment: requests left unanswered this soon after it was back are the kill's too.
OUTAGE_GRACE_S = 2.0

LOCUSTFILE = REPO_ROOT / "load_tests" / "intake.py"
ORDERS_PER_TRADER_PER_S = 40  # under the API's per-participant rate limit (100/s)
PER_INTERVAL = 9_000  # orders signed per interval: under the chain's MaxOrdersPerInterval
# Each trader's funds: its bids (at most 1.90 BRL each) for the intervals in flight; the dev
# accounts that fund them hold 10 million BRL.
FUND_BRL = 20_000


@dataclass(frozen=True)
class Load:
    rate: float  # orders/s held
    ramp_s: float
    hold_s: float
    burst_s: float
    burst: float  # x the rate during the burst
    user_rate: float = 10.0
    batch_share: float = 0.0  # of the orders, sent by aggregators in batches
    batch_size: int = 25

    @property
    def seconds(self) -> float:
        # The hold may run up to one interval longer, to end the burst at a gate.
        return self.ramp_s + self.hold_s + self.burst_s + 20

    def orders(self) -> int:
        return math.ceil(
            self.rate * (self.ramp_s + self.hold_s + 20) + self.rate * self.burst * self.burst_s
        )


def _plan(load: Load, interval_s: float) -> tuple[int, int]:
    """(orders signed per interval, intervals): enough for the earliest open interval at every
    moment of the run, at the burst's rate, and for the run's total even though one interval
    takes at most PER_INTERVAL orders (then the load moves on to later intervals, as real
    traders would)."""
    per_interval = min(PER_INTERVAL, math.ceil(load.rate * load.burst * interval_s * 1.2))
    intervals = max(math.ceil(load.orders() / per_interval), math.ceil(load.seconds / interval_s))
    return per_interval, intervals + 2


def _traders(load: Load, per_interval: int) -> list[str]:
    """Enough traders to stay under the API's per-participant rate and open-order caps."""
    n = max(
        2,  # one buyer and one seller at least: nobody may trade both sides of an interval
        math.ceil(load.rate * load.burst / ORDERS_PER_TRADER_PER_S),
        math.ceil(per_interval / 500),
    )
    return [f"//WattChain/bench/{i}" for i in range(n)]


def _sign_orders(
    chain: Chain, uris: list[str], plan: tuple[int, int], path: Path, margin_ms: int
) -> int:
    """Every order of the run, signed, in interval order from the first interval open after
    setup; half bids, half offers, crossing prices. Returns how many."""
    params = chain.market_params()
    genesis = chain.genesis_hash
    keys = [keypair(uri) for uri in uris]
    # A participant buys or sells in an interval, never both: half the keys bid, half offer.
    sides = {"bid": keys[0::2], "offer": keys[1::2]}
    rng = random.Random(1)
    per_interval, intervals = plan
    first = params.first_open_interval(now_ms(), margin_ms + 5_000)
    lo, hi = params.feed_in_ticks, params.utility_tariff_ticks
    with open(path, "w") as f:
        for k in range(first, first + intervals):
            gate_ms = params.gate_closure(k)
            for i in range(per_interval):
                side = "bid" if i % 2 == 0 else "offer"
                spec = OrderSpec(
                    client_order_id=fresh_client_order_id(),
                    interval=k,
                    side=side,
                    quantity_wh=rng.randint(100, 2_000),
                    price_ticks=rng.randint(lo, hi),
                    source="grid_mix" if side == "bid" else "solar",
                )
                group = sides[side]
                body = order_body(group[(i // 2) % len(group)], genesis, spec)
                f.write(json.dumps({"interval": k, "gate_ms": gate_ms, "body": body}) + "\n")
    return per_interval * intervals


REQUESTS = ("POST /orders", "POST /orders/batch")


def held_rate(timeline: dict[str, dict[str, int]], load: Load) -> float | None:
    """202s per second over the hold: from the end of the ramp (counted from the load's first
    answer, in the timeline's tenths of a unix second) for `hold_s`; None if the run ended
    before the hold did."""
    tenths = [int(k) for k in timeline]
    if not tenths:
        return None
    start = min(tenths) + round(load.ramp_s * 10)
    end = start + round(load.hold_s * 10)
    if max(tenths) < end - 1:
        return None
    acks = sum(seen.get("202", 0) for k, seen in timeline.items() if start <= int(k) < end)
    return round(acks / load.hold_s, 1)


def _locust_stats(prefix: Path) -> dict[str, dict]:
    """Locust's figures of each kind of request sent, by name."""
    with open(f"{prefix}_stats.csv") as f:
        return {row["Name"]: row for row in csv.DictReader(f) if row["Name"] in REQUESTS}


def _worst(stats: dict[str, dict], column: str) -> float | None:
    """An order's answer time at a percentile: the larger of its kinds' (a batch answers for
    each of its orders when it answers)."""
    values = [v for v in (_ms(row.get(column)) for row in stats.values()) if v is not None]
    return max(values, default=None)


def _follow(data: DataDir, acks: list, timeout_s: float, tick: Callable[[], None]) -> dict:
    """Wait until the relay log has no entry pending or in flight and the index (finalized
    blocks) shows every order the relayer saw on chain (or timeout_s), then the fate of each
    acknowledged order: on chain, or not (with the chain's reason, or `not finalized` for an
    order the relayer saw in a block the chain no longer has). `tick` runs every second."""
    log, index = OrderLog(data.orders()), data.index()
    deadline = time.monotonic() + timeout_s
    while log.unrelayed()[0] and time.monotonic() < deadline:
        tick()
        time.sleep(1)
    rows = {(owner, int(cid)): log.order(owner, int(cid)) for owner, cid, _ in acks}
    relayed = {key for key, row in rows.items() if row is not None and row["status"] == "onchain"}
    as_indexed = {key: (ss58(key[0]), str(key[1])) for key in rows}
    deadline = time.monotonic() + timeout_s  # the indexer may be catching up after a restart
    while True:
        indexed = {
            (owner, cid): block
            for owner, cid, block in index.execute(
                "SELECT owner, client_order_id, placed_block FROM orders"
            )
        }
        final = {key for key in rows if as_indexed[key] in indexed}
        if relayed <= final or time.monotonic() >= deadline:
            break
        tick()
        time.sleep(1)
    lost: Counter[str] = Counter()
    lags, block_lags = [], []
    blocks = BlockClock(index)
    for key, row in rows.items():
        if key not in final:
            reason = "missing" if row is None else row["error"] or row["status"]
            lost["not finalized" if reason == "onchain" else reason] += 1
        elif key in relayed:
            lags.append((row["updated_ms"] - row["received_ms"]) / 1000)
            # The block the index has it in: the relayer may not know it (found on chain by
            # a restarted relayer's recovery).
            block_lags.append(blocks.lag(row["received_ms"], indexed[as_indexed[key]]))
    return {
        "on_chain": len(final),
        "lost": sum(lost.values()),
        "lost_by_reason": dict(lost),
        "relay_lag_p99_s": _p99(lags),
        "relay_lag_p99_blocks": _p99(block_lags),
    }


def _p99(values: list) -> float | None:
    values = sorted(values)
    return round(values[int(0.99 * (len(values) - 1))], 2) if values else None


class BlockClock:
    """The chain's blocks by their timestamps (the index's `blocks`), to count how many blocks
    after its acknowledgement an order was included."""

    def __init__(self, index: sqlite3.Connection):
        rows = index.execute(
            "SELECT number, timestamp_ms FROM blocks WHERE timestamp_ms > 0 ORDER BY number"
        ).fetchall()
        self.numbers = [n for n, _ in rows]
        self.stamps = [t for _, t in rows]

    def lag(self, acknowledged_ms: int, included: int) -> int:
        """Blocks from the newest block whose slot had begun when the order was acknowledged
        to the block that included it: 1 is the next block, the soonest an order can be in."""
        i = bisect.bisect_right(self.stamps, acknowledged_ms) - 1
        return included - (self.numbers[i] if i >= 0 else 0)


def _duplicated(data: DataDir) -> int:
    """(owner, client order id) pairs the index shows placed more than once."""
    (dups,) = (
        data.index()
        .execute(
            "SELECT count(*) FROM (SELECT 1 FROM orders GROUP BY owner, client_order_id"
            " HAVING count(*) > 1)"
        )
        .fetchone()
    )
    return dups


@dataclass
class Kill:
    """One part killed once during the hold, and when it was back: the API answering its
    /health, the workers' relayer putting an order on chain, the node making a new block."""

    part: str
    planned_s: float  # seconds into the run
    at_s: float | None = None
    at_unix: float = 0.0
    back_after_s: float | None = None
    timed_out: bool = False
    restarts_before: int = 0
    best_before: int = 0
    while_down: Counter[str] = field(default_factory=Counter)

    @property
    def waiting(self) -> bool:
        """Killed, and neither back nor given up on yet."""
        return self.at_s is not None and self.back_after_s is None and not self.timed_out

    def down(self, end_unix: float) -> tuple[float, float]:
        """Unix times from the kill to the part being back (or `end_unix`)."""
        back = end_unix if self.back_after_s is None else self.at_unix + self.back_after_s
        return self.at_unix, back

    def report(self) -> dict:
        seen = dict(self.while_down)
        return {
            "part": self.part,
            "at_s": None if self.at_s is None else round(self.at_s, 1),
            "back_after_s": None if self.back_after_s is None else round(self.back_after_s, 1),
            "acknowledged_while_down": seen.pop("202", 0),
            "while_down": seen,
        }


def kill_plan(parts: list[str], load: Load) -> list[Kill]:
    """Each part killed once, the kills spread evenly over the hold (1/4, 2/4, 3/4 for three)."""
    unknown = [p for p in parts if p not in KILLABLE]
    if unknown or len(set(parts)) != len(parts):
        raise ValueError(
            f"--kill takes each of {', '.join(KILLABLE)} at most once, comma-separated: {parts}"
        )
    return [
        Kill(part, load.ramp_s + load.hold_s * (i + 1) / (len(parts) + 1))
        for i, part in enumerate(parts)
    ]


class Killer:
    """Sends the planned kills in turn (the next once the last is back or given up on) and
    watches each part come back, between the supervisor's checks on the main thread."""

    def __init__(self, market: Market, data: DataDir, kills: list[Kill], started: float):
        self.market = market
        self.log = OrderLog(data.orders())
        self.kills = kills
        self.started = started
        self._probed = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        t = now - self.started
        for kill in self.kills:
            if kill.waiting:
                if now - self._probed >= 0.5:
                    self._probed = now
                    if self._back(kill):
                        kill.back_after_s = time.time() - kill.at_unix
                    elif t - kill.at_s > BACK_TIMEOUT_S:
                        kill.timed_out = True
                return
            if kill.at_s is None:
                if t >= kill.planned_s:
                    self._kill(kill, t)
                return

    def waiting(self) -> bool:
        return any(k.waiting for k in self.kills)

    def _kill(self, kill: Kill, t: float) -> None:
        kill.restarts_before = self.market.supervisor.restarts(kill.part)
        if kill.part == "node":
            kill.best_before = self._best() or 0
        process = self.market.parts[kill.part].process
        kill.at_s, kill.at_unix = t, time.time()
        if process is not None:
            # The part's own process, not its group: a crash, which the supervisor notices
            # (and then clears the group).
            os.kill(process.pid, signal.SIGKILL)

    def _back(self, kill: Kill) -> bool:
        if self.market.supervisor.restarts(kill.part) <= kill.restarts_before:
            return False
        if kill.part == "api":
            try:
                return httpx.get(f"{self.market.api_url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        if kill.part == "workers":  # only the relayer marks orders on chain
            last = self.log.last_on_chain_ms()
            return last is not None and last > kill.at_unix * 1000
        best = self._best()
        return best is not None and best > kill.best_before

    def _best(self) -> int | None:
        chain = Chain(self.market.node_url, connect_timeout_s=0, rpc_timeout_s=1, retry_s=0)
        try:
            return chain.connect(timeout_s=1).best_number()
        except Exception:  # any failure to read it: the node is not back yet
            return None
        finally:
            chain.close()

    def attribute(self, timeline: dict[str, dict[str, int]], end_unix: float) -> Counter[str]:
        """Give each kill the load's answers from its kill to its part being back; return the
        requests nobody answered from a kill until OUTAGE_GRACE_S after its part was back: not
        failures, but the outage as the clients saw it."""
        excused: Counter[str] = Counter()
        for tenth, answers in timeline.items():
            start, end = int(tenth) / 10, int(tenth) / 10 + 0.1
            excuse = False
            for kill in self.kills:
                if kill.at_s is None:
                    continue
                down_from, back = kill.down(end_unix)
                if end > down_from and start <= back:
                    kill.while_down.update(answers)
                if end > down_from and start <= back + OUTAGE_GRACE_S:
                    excuse = True
            if excuse:
                excused.update({k: v for k, v in answers.items() if _outage(k)})
        return excused


def _outage(outcome: str) -> bool:
    """No answer at all (status 0: the API's port closed, the connection reset): what a client
    of a killed API sees, and tries again later. (A 503, ChainUnavailable while the node is
    down included, is a refusal with Retry-After anyway.)"""
    return outcome.startswith("0 ")


def _part_pids(market: Market, locust: subprocess.Popen | None) -> dict[str, int]:
    """The process of each part of the market (the node, the workers, the API) and of Locust."""
    pids = {
        name: process.pid
        for name, part in market.parts.items()
        if (process := getattr(part, "process", None)) is not None
    }
    if locust is not None:
        pids["locust"] = locust.pid
    return pids


def _processes(pids: dict[str, int]) -> list[tuple[str, object]]:
    """(part, psutil process) of each part's process and its children: the API in several
    processes is uvicorn's parent and its workers."""
    import psutil  # locust's own dependency: only this bench needs it

    found = []
    for part, pid in pids.items():
        try:
            root = psutil.Process(pid)
            found += [(part, proc) for proc in [root, *root.children(recursive=True)]]
        except psutil.Error:
            continue
    return found


class _PartsCpu:
    """CPU seconds each part spent since the run started (the API, the node, the workers,
    Locust), its child processes included, a killed one's counted up to its last sample."""

    def __init__(self):
        import psutil

        self._error = psutil.Error
        self.procs: dict[int, object] = {}
        self.part_of: dict[int, str] = {}
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.seen: set[str] = set()

    def sample(self, pids: dict[str, int]) -> None:
        # A part's start-up is before the run; a restarted one's is the run's cost.
        new = set(pids) - self.seen
        self.seen |= new
        for part, proc in _processes(pids):
            try:
                proc = self.procs.setdefault(proc.pid, proc)
                cpu = sum(proc.cpu_times()[:2])
            except self._error:
                continue
            self.part_of[proc.pid] = part
            self.first.setdefault(proc.pid, cpu if part in new else 0.0)
            self.last[proc.pid] = cpu

    def seconds(self) -> dict[str, float]:
        spent: Counter[str] = Counter()
        for pid, cpu in self.last.items():
            spent[self.part_of[pid]] += cpu - self.first[pid]
        return dict(spent)


class Pinning:
    """The API on `api_cpus`, everything else (the node, the workers, Locust, this bench) on the
    machine's other CPUs: what the API's cores take with the load generator apart (`taskset`).
    Applied again to processes that restart."""

    def __init__(self, api_cpus: set[int]):
        import psutil

        self._error = psutil.Error
        every = os.sched_getaffinity(0)
        self.api_cpus = sorted(api_cpus)
        self.rest = sorted(every - api_cpus)
        if not api_cpus <= every or not self.rest:
            raise RuntimeError(
                f"--api-cpus {','.join(map(str, self.api_cpus))}: give some of this machine's "
                f"CPUs ({','.join(map(str, sorted(every)))}), not all of them"
            )
        os.sched_setaffinity(0, self.rest)  # this bench, and what it starts from now on
        self.pinned: set[int] = set()

    def apply(self, pids: dict[str, int]) -> None:
        for part, proc in _processes(pids):
            if proc.pid in self.pinned:
                continue
            try:
                proc.cpu_affinity(self.api_cpus if part == "api" else self.rest)
            except self._error:
                continue
            self.pinned.add(proc.pid)

    def observed(self, pids: dict[str, int]) -> dict[str, list[int]]:
        """The CPUs each part's processes may run on now, as the kernel has them."""
        cpus: dict[str, set[int]] = {}
        for part, proc in _processes(pids):
            try:
                cpus.setdefault(part, set()).update(proc.cpu_affinity())
            except self._error:
                continue
        return {part: sorted(found) for part, found in sorted(cpus.items())}


def run_api_bench(
    node_binary: str | None,
    load: Load,
    *,
    data: Path | None = None,
    kill: list[str] = (),
    api_processes: int = 1,
    api_cpus: set[int] | None = None,
    log=print,
) -> dict:
    kills = kill_plan(list(kill), load)
    pinning = Pinning(api_cpus) if api_cpus else None
    keep = data is not None
    root = Path(data) if data else Path(tempfile.mkdtemp(prefix="wattchain-loadtest-"))
    if (root / "orders.db").exists() or (root / "chain").exists():
        raise RuntimeError(f"{root} holds a market already: give a new or empty folder (--data)")
    market: Market | None = None
    locust: subprocess.Popen | None = None
    try:
        log(f"[bench] starting a market in {root}")
        market = start_market(
            root,
            holder="wattchain bench api",
            node_binary=node_binary,
            api_processes=api_processes,
        )
        supervisor = market.supervisor
        chain = Chain(market.node_url).connect()
        params = chain.market_params()
        plan = _plan(load, params.interval_ms / 1000)
        uris = _traders(load, plan[0])
        log(f"[bench] registering and funding {len(uris)} traders")
        settings = Settings()
        onboard(
            chain,
            keypair(settings.operator_uri),
            keypair(settings.distributor_uri),
            [
                Newcomer(
                    keypair(uri).ss58_address,
                    0,
                    FUND_BRL * UNITS_PER_BRL,
                    meter=MeterKey.from_uri(f"{uri}/meter").public_key_hex,
                    rated_power_w=SDM630.rated_power_w,
                )
                for uri in uris
            ],
        )
        margin_ms = settings.order_margin_ms + 1_000  # sent no closer to the gate than this
        orders_file, acks_file = root / "bench-orders.jsonl", root / "bench-acks.json"
        signed_at = time.monotonic()
        n = _sign_orders(chain, uris, plan, orders_file, margin_ms)
        chain.close()  # a killed node breaks it; the follow-up reads the stores
        log(f"[bench] signed {n} orders in {time.monotonic() - signed_at:.1f} s; running Locust")
        env = {
            "WATTCHAIN_LOAD_ORDERS_FILE": str(orders_file),
            "WATTCHAIN_LOAD_ACKS_FILE": str(acks_file),
            "WATTCHAIN_LOAD_RATE": str(load.rate),
            "WATTCHAIN_LOAD_USER_RATE": str(load.user_rate),
            "WATTCHAIN_LOAD_RAMP_S": str(load.ramp_s),
            "WATTCHAIN_LOAD_HOLD_S": str(load.hold_s),
            "WATTCHAIN_LOAD_BURST_S": str(load.burst_s),
            "WATTCHAIN_LOAD_BURST": str(load.burst),
            "WATTCHAIN_LOAD_MARGIN_MS": str(margin_ms),
            "WATTCHAIN_LOAD_INTERVAL_MS": str(params.interval_ms),
            "WATTCHAIN_LOAD_BATCH_SHARE": str(load.batch_share),
            "WATTCHAIN_LOAD_BATCH_SIZE": str(load.batch_size),
        }
        stats_prefix = root / "locust"
        locust_bin = Path(sys.executable).with_name("locust")
        cpu = _PartsCpu()
        started = time.monotonic()
        killer = Killer(market, DataDir(root), kills, started)

        def tick() -> None:
            # The main thread restarts dead parts: a child dies with the thread that started it.
            supervisor.check()
            killer.tick()
            pids = _part_pids(market, locust)
            if pinning is not None:
                pinning.apply(pids)
            cpu.sample(pids)

        with open(root / "logs" / "locust.log", "w") as locust_log:
            locust = subprocess.Popen(
                [str(locust_bin), "-f", str(LOCUSTFILE), "--headless", "--host", market.api_url]
                + ["--only-summary", "--csv", str(stats_prefix), "--loglevel", "WARNING"],
                env={**os.environ, **env},
                stdout=locust_log,
                stderr=subprocess.STDOUT,
            )
        tick()
        while locust.poll() is None:
            if time.monotonic() - started > load.seconds + 120:
                locust.terminate()
                locust.wait(30)
                break
            tick()
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        end_unix = time.time()
        pinned = pinning.observed(_part_pids(market, None)) if pinning is not None else None
        spent = cpu.seconds()
        result = json.loads(acks_file.read_text())
        acks, outcomes = result["acks"], result["outcomes"]
        stats = _locust_stats(stats_prefix)
        log(f"[bench] {len(acks)} acknowledged; following them to the chain")
        followed = _follow(DataDir(root), acks, 120, tick)
        while killer.waiting():  # a part killed late in the run: wait for it to be back
            tick()
            time.sleep(0.2)
        refused = {k: v for k, v in outcomes.items() if k.startswith(("503", "429"))}
        answered = sum(v for k, v in outcomes.items() if k.split(" ")[0].isdigit())
        excused = killer.attribute(result.get("timeline", {}), end_unix)
        return {
            "held_orders_per_s": held_rate(result.get("timeline", {}), load),
            "orders_per_s": round(len(acks) / elapsed, 1),
            "p50_ms": _worst(stats, "50%"),
            "p99_ms": _worst(stats, "99%"),
            "acknowledged": len(acks),
            **followed,
            "duplicated": _duplicated(DataDir(root)),
            "failures": answered - sum(refused.values()) - sum(excused.values()),
            "refused": refused,
            "unsent": {k: v for k, v in outcomes.items() if not k.split(" ")[0].isdigit()},
            "cpu_api_pct": round(spent.get("api", 0.0) / elapsed * 100, 1),
            "cpu_ms_per_order": {
                part: round(seconds * 1000 / max(1, len(acks)), 3)
                for part, seconds in sorted(spent.items())
            },
            "cpu_pct": {part: round(seconds / elapsed * 100, 1) for part, seconds in spent.items()},
            "api_processes": api_processes,
            **({"pinned": pinned} if pinned is not None else {}),
            "target_orders_per_s": load.rate,
            **(
                {
                    "batch_share": load.batch_share,
                    "batch_size": load.batch_size,
                    "by_request": {
                        name: {
                            "requests": int(row["Request Count"]),
                            "p50_ms": _ms(row.get("50%")),
                            "p99_ms": _ms(row.get("99%")),
                        }
                        for name, row in stats.items()
                    },
                }
                if load.batch_share
                else {}
            ),
            "seconds": round(elapsed, 1),
            "restarts": {w.name: w.restarts for w in supervisor.watched},
            **({"kills": [k.report() for k in kills]} if kills else {}),
            **({"unanswered_while_down": dict(excused)} if kills else {}),
        }
    finally:
        if locust is not None and locust.poll() is None:
            locust.kill()
            locust.wait(10)
        if market is not None:
            market.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _ms(value) -> float | None:
    return None if value in (None, "", "N/A") else float(value)


def misses(result: dict, thresholds: dict) -> list[str]:
    """The thresholds the result misses, each as text."""
    out = []
    low = {"min_orders_per_s": "held_orders_per_s"}
    high = {
        "max_p99_ms": "p99_ms",
        "max_lost": "lost",
        "max_failures": "failures",
        "max_duplicated": "duplicated",
        "max_relay_lag_p99_s": "relay_lag_p99_s",
        "max_relay_lag_p99_blocks": "relay_lag_p99_blocks",
    }
    for key, figure in low.items():
        if thresholds.get(key) is not None and (result[figure] or 0) < thresholds[key]:
            out.append(f"{figure} {result[figure]} < {thresholds[key]}")
    for key, figure in high.items():
        value = result.get(figure)
        if thresholds.get(key) is not None and (value is None or value > thresholds[key]):
            out.append(f"{figure} {value} > {thresholds[key]}")
    for kill in result.get("kills", []):
        if kill["at_s"] is None:
            out.append(f"{kill['part']} was never killed (the run ended first)")
        elif kill["back_after_s"] is None:
            out.append(
                f"{kill['part']}, killed at {kill['at_s']} s, was not back within "
                f"{BACK_TIMEOUT_S:.0f} s"
            )
    return out
