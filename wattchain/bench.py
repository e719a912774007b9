"""`wattchain bench api` (`make loadtest`): order intake under load, end to end, on this machine.

It starts a market of its own (a fresh dev node, the workers, the API) on free loopback ports,
registers and funds the traders in one batch of extrinsics, signs every order before the run,
then runs Locust headless (`load_tests/intake.py`: FastHttpUser, ramp, hold, a burst before a
gate) against the API. Afterwards it follows every acknowledged order to the chain through the
relay log, and prints one JSON line:

- `orders_per_s`: 202s per second over the whole run; `p50_ms`, `p99_ms` of POST /orders;
- `acknowledged`, `on_chain`, `lost` (acknowledged, never on chain: a late rejection counts
  here), `duplicated` (an (owner, client order id) placed twice on chain), `failures`
  (answers other than 202 and the honest refusals), `refused` (503 RelayBacklog, 429
  RateLimited, by reason);
- `relay_lag_p99_s` and `relay_lag_p99_blocks` (202 to on chain), `cpu_api_pct` (of one core,
  over the run).

It exits 1 when a figure misses a threshold it was given (`--min-orders-per-s`, `--max-p99-ms`,
`--max-lost`, ...). The market's data folder is kept when `--data` is given.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from api.client import fresh_client_order_id, order_body
from chain import Chain, Newcomer, onboard
from market import UNITS_PER_BRL, OrderSpec, keypair, now_ms
from market.settings import Settings
from meter_bridge import MeterKey
from meter_bridge.registers import SDM630
from store import DataDir, OrderLog

from .node import DevNode, free_port
from .processes import REPO_ROOT, start_api, start_workers, wait_http

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


def _locust_stats(prefix: Path) -> dict:
    with open(f"{prefix}_stats.csv") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "POST /orders":
                return row
    return {}


def _follow(data: DataDir, acks: list, timeout_s: float) -> dict:
    """Wait until the relay log has no entry pending or in flight (or timeout_s), then the fate
    of each acknowledged order: on chain, or not (with the chain's reason)."""
    log = OrderLog(data.orders())
    deadline = time.monotonic() + timeout_s
    while log.unrelayed()[0] and time.monotonic() < deadline:
        time.sleep(1)
    on_chain, lost, lags = 0, {}, []
    for owner, cid, _ in acks:
        row = log.order(owner, int(cid))
        if row is not None and row["status"] == "onchain":
            on_chain += 1
            lags.append((row["updated_ms"] - row["received_ms"]) / 1000)
        else:
            reason = "missing" if row is None else row["error"] or row["status"]
            lost[reason] = lost.get(reason, 0) + 1
    lags.sort()
    return {
        "on_chain": on_chain,
        "lost": sum(lost.values()),
        "lost_by_reason": lost,
        "relay_lag_p99_s": round(lags[int(0.99 * (len(lags) - 1))], 2) if lags else None,
    }


def _duplicated(data: DataDir, timeout_s: float, expected: int) -> int:
    """(owner, client order id) pairs the index shows placed more than once, once it has
    indexed the acknowledged orders (or timeout_s)."""
    index = data.index()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        (n,) = index.execute("SELECT count(*) FROM orders").fetchone()
        if n >= expected:
            break
        time.sleep(1)
    (dups,) = index.execute(
        "SELECT count(*) FROM (SELECT 1 FROM orders GROUP BY owner, client_order_id"
        " HAVING count(*) > 1)"
    ).fetchone()
    return dups


def run_api_bench(
    node_binary: str | None, load: Load, *, data: Path | None = None, log=print
) -> dict:
    keep = data is not None
    root = Path(data) if data else Path(tempfile.mkdtemp(prefix="wattchain-loadtest-"))
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    node = DevNode(node_binary, log_path=logs / "node.log").start()
    api = workers = None
    try:
        chain = Chain(node.url).connect()
        plan = _plan(load, chain.market_params().interval_ms / 1000)
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
        workers = start_workers(root, node.url, logs / "workers.log")
        port = free_port()
        api = start_api(root, node.url, port, logs / "api.log")
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", 90, api)
        margin_ms = Settings().order_margin_ms + 1_000  # sent no closer to the gate than this
        orders_file, acks_file = root / "bench-orders.jsonl", root / "bench-acks.json"
        signed_at = time.monotonic()
        n = _sign_orders(chain, uris, plan, orders_file, margin_ms)
        log(f"[bench] signed {n} orders in {time.monotonic() - signed_at:.1f} s; running Locust")
        import psutil  # locust's own dependency: only this bench needs it

        api_proc = psutil.Process(api.pid)
        cpu_before, started = sum(api_proc.cpu_times()[:2]), time.monotonic()
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
            "WATTCHAIN_LOAD_INTERVAL_MS": str(chain.market_params().interval_ms),
        }
        stats_prefix = root / "locust"
        locust = Path(sys.executable).with_name("locust")
        with open(logs / "locust.log", "w") as locust_log:
            subprocess.run(
                [str(locust), "-f", str(LOCUSTFILE), "--headless", "--host", url]
                + ["--only-summary", "--csv", str(stats_prefix), "--loglevel", "WARNING"],
                env={**os.environ, **env},
                stdout=locust_log,
                stderr=subprocess.STDOUT,
                timeout=load.seconds + 120,
                check=False,
            )
        elapsed = time.monotonic() - started
        cpu_api = (sum(api_proc.cpu_times()[:2]) - cpu_before) / elapsed * 100
        result = json.loads(acks_file.read_text())
        acks, outcomes = result["acks"], result["outcomes"]
        stats = _locust_stats(stats_prefix)
        log(f"[bench] {len(acks)} acknowledged; following them to the chain")
        followed = _follow(DataDir(root), acks, timeout_s=120)
        block_s = chain.block_ms() / 1000
        lag = followed["relay_lag_p99_s"]
        refused = {k: v for k, v in outcomes.items() if k.startswith(("503", "429"))}
        failures = sum(v for k, v in outcomes.items() if k[:3].isdigit()) - sum(refused.values())
        return {
            "orders_per_s": round(len(acks) / elapsed, 1),
            "p50_ms": _ms(stats.get("50%")),
            "p99_ms": _ms(stats.get("99%")),
            "acknowledged": len(acks),
            **followed,
            "relay_lag_p99_blocks": None if lag is None else round(lag / block_s, 1),
            "duplicated": _duplicated(DataDir(root), 60, followed["on_chain"]),
            "failures": failures,
            "refused": refused,
            "unsent": {k: v for k, v in outcomes.items() if not k[:3].isdigit()},
            "cpu_api_pct": round(cpu_api, 1),
            "target_orders_per_s": load.rate,
            "seconds": round(elapsed, 1),
        }
    finally:
        for child in (api, workers):
            if child is not None:
                child.stop()
        node.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _ms(value) -> float | None:
    return None if value in (None, "", "N/A") else float(value)


def misses(result: dict, thresholds: dict) -> list[str]:
    """The thresholds the result misses, each as text."""
    out = []
    low = {"min_orders_per_s": "orders_per_s"}
    high = {
        "max_p99_ms": "p99_ms",
        "max_lost": "lost",
        "max_failures": "failures",
        "max_duplicated": "duplicated",
        "max_relay_lag_p99_s": "relay_lag_p99_s",
    }
    for key, figure in low.items():
        if thresholds.get(key) is not None and (result[figure] or 0) < thresholds[key]:
            out.append(f"{figure} {result[figure]} < {thresholds[key]}")
    for key, figure in high.items():
        value = result[figure]
        if thresholds.get(key) is not None and (value is None or value > thresholds[key]):
            out.append(f"{figure} {value} > {thresholds[key]}")
    return out
