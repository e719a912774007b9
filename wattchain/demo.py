"""`wattchain demo`: a dev node, the API, the workers and simulated sites, trading live.

The operator (Alice) registers the sites and accredits their meters; each site's agent bids or
offers through the API client; the scheduler clears each interval at gate closure, the sites'
meters report after it ends, the settler settles it. One line per interval goes to stdout
(JSON with --json); progress goes to stderr; everything stays in the data folder."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from pathlib import Path

from api.client import Client, OrderRefused
from chain import Chain
from market import UNITS_PER_BRL, interval_clock, keypair, now_ms
from market.settings import Settings
from offchain.ingest import Ingest
from store import DataDir, queries

from .node import DevNode, build_binary, find_binary, free_port
from .processes import start_api, start_workers, wait_http
from .sites import Agent, make_sites, register_sites

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    return Path("data") / time.strftime("demo-%Y%m%d-%H%M%S")


class Demo:
    def __init__(
        self,
        intervals: int,
        data_dir: Path,
        *,
        as_json: bool = False,
        prosumers: int = 2,
        consumers: int = 3,
        speed: float = 45.0,
        start_hour: float = 15.0,
        out=sys.stdout,
        err=sys.stderr,
    ):
        self.intervals = intervals
        self.data_dir = Path(data_dir).resolve()
        self.as_json = as_json
        self.speed = speed
        self.start_hour = start_hour
        self.out, self.err = out, err
        self.sites = make_sites(prosumers, consumers)
        self.node = self.api = self.workers = None
        self._ingest_thread: threading.Thread | None = None
        self._ingest_loop: asyncio.AbstractEventLoop | None = None
        self._ingest_stop: asyncio.Event | None = None
        self.chain: Chain | None = None
        self.results: list[dict] = []

    def say(self, text: str) -> None:
        print(f"[demo] {text}", file=self.err, flush=True)

    def run(self) -> int:
        try:
            self._start()
            return self._trade()
        finally:
            self._stop()
            self._summary()

    def _summary(self) -> None:
        """The last line, once every part has stopped: what the run traded and where it is kept."""
        balanced = all(r["settlement"]["balanced"] for r in self.results)
        line = (
            f"{len(self.results)} of {self.intervals} intervals settled: "
            f"{sum(r['orders'] for r in self.results)} orders, "
            f"{sum(r['volume_wh'] for r in self.results)} Wh cleared, money and energy "
            f"{'balanced' if balanced else 'NOT balanced'} in each; state kept in {self.data_dir}"
        )
        if self.as_json:  # stdout stays one JSON object per interval
            self.say(line)
        else:
            print(line, file=self.out, flush=True)

    # -- start and stop --------------------------------------------------------------------
    def _start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logs = self.data_dir / "logs"
        binary = find_binary()
        if binary is None:
            binary = build_binary(self.err)
        self.say(f"starting {binary.name} (dev chain in {self.data_dir / 'chain'})")
        self.node = DevNode(
            binary, base_path=self.data_dir / "chain", log_path=logs / "node.log"
        ).start()
        self.say(f"node up at {self.node.url}")
        port = free_port()
        self.settings = Settings(data_dir=self.data_dir, node_url=self.node.url, api_port=port)
        self.workers = start_workers(self.data_dir, self.node.url, logs / "workers.log")
        self.api = start_api(self.data_dir, self.node.url, port, logs / "api.log")
        self.api_url = f"http://127.0.0.1:{port}"
        wait_http(f"{self.api_url}/health", 90, self.api)
        self.say(f"API at {self.api_url} (web page at {self.api_url}/), workers running")
        self.chain = Chain(self.node.url).connect()
        for site in self.sites:
            site.start(self.speed, self.start_hour)
        self.say(
            f"{len(self.sites)} simulated sites on Modbus: "
            + ", ".join(f"{s.name}@{s.simulator.port}" for s in self.sites)
        )
        register_sites(
            self.chain,
            keypair(self.settings.operator_uri),
            keypair(self.settings.distributor_uri),
            self.sites,
            speed=self.speed,
            fund_units=1_000 * UNITS_PER_BRL,
        )
        self.say("operator registered the participants, distributor accredited their meters")
        self._start_ingest()

    def _start_ingest(self) -> None:
        """The ingest worker reads the simulated meters at each interval's end and sends their
        signed readings (the first one is each meter's baseline)."""
        ingest = Ingest(
            Chain(self.node.url).connect(),
            [s.meter_site(self.speed) for s in self.sites],
            self.data_dir / "ingest",
            submitter_uri=self.settings.meter_submitter_uri,
        )
        started = threading.Event()

        async def main() -> None:
            self._ingest_loop = asyncio.get_running_loop()
            self._ingest_stop = asyncio.Event()
            started.set()
            await ingest.run(intervals=self.intervals + 3, stop=self._ingest_stop)

        def run() -> None:
            try:
                asyncio.run(main())
            except Exception:  # the demo reports what is missing; the log has the details
                log.exception("ingest stopped")
            finally:
                started.set()
                ingest.chain.close()

        self._ingest_thread = threading.Thread(target=run, name="ingest", daemon=True)
        self._ingest_thread.start()
        started.wait(10)

    def _stop(self) -> None:
        # In the order that leaves no part talking to one already gone: ingest reads the sites'
        # meters, so it stops before them; the API and the workers before the node they use.
        if self._ingest_thread is not None:
            if self._ingest_loop is not None and self._ingest_stop is not None:
                self._ingest_loop.call_soon_threadsafe(self._ingest_stop.set)
            self._ingest_thread.join(timeout=30)
        for site in self.sites:
            site.stop()
        for child in (self.api, self.workers):
            if child is not None:
                child.stop()
        if self.chain is not None:
            self.chain.close()
        if self.node is not None:
            self.node.stop()

    # -- the market ------------------------------------------------------------------------
    def _trade(self) -> int:
        params = self.params = self.chain.market_params()
        client = Client(self.api_url)
        margin = self.settings.order_margin_ms + 1_000
        first = params.first_open_interval(now_ms(), margin)
        last = first + self.intervals - 1
        self.say(
            f"trading intervals {first}..{last}, {self._clock(first, through=last)} "
            f"{self.settings.timezone} "
            f"({params.interval_ms // 1000} s each, gate "
            f"{params.gate_closure_ms // 1000} s before start); first gate closes in "
            f"{(params.gate_closure(first) - now_ms()) / 1000:.0f} s"
        )
        agents = [Agent(site, params, self.speed, seed=site.seed) for site in self.sites]
        placed: dict[int, int] = {}
        printed: set[int] = set()
        deadline = time.monotonic() + (self.intervals + 5) * params.interval_ms / 1000 + 120
        while len(printed) < self.intervals and time.monotonic() < deadline:
            now = now_ms()
            k = params.first_open_interval(now, margin)
            if first <= k <= last and k not in placed:
                placed[k] = self._place_orders(client, agents, k)
            for j in range(first, last + 1):
                if j not in printed and self.chain.settled_at(j) is not None:
                    self._print(j, placed.get(j, 0))
                    printed.add(j)
            time.sleep(0.25)
        client.close()
        self._wait_for_index(last)
        if len(printed) < self.intervals:
            self.say(
                f"only {len(printed)} of {self.intervals} intervals settled in time; "
                f"see {self.data_dir / 'logs'}"
            )
            return 1
        return 0 if all(r["settlement"]["balanced"] for r in self.results) else 1

    def _wait_for_index(self, last: int, timeout_s: float = 30.0) -> None:
        """Let the indexer reach the last settlement, so the data folder left behind (and the
        API on it) holds the whole run."""
        index = DataDir(self.data_dir).index()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if queries.is_settled(index, last):
                return
            time.sleep(0.5)
        self.say(f"the index has not reached the settlement of interval {last} yet")

    def _clock(self, interval: int, *, through: int | None = None) -> str:
        return interval_clock(
            interval, self.params.interval_ms, self.settings.timezone, through=through
        )

    def _place_orders(self, client: Client, agents: list[Agent], interval: int) -> int:
        sent = 0
        for agent in agents:
            raw = agent.site.read()
            order = agent.order_for(raw)
            if order is None:
                continue
            side, quantity, price = order
            try:
                client.place_order(
                    agent.site.account,
                    side,
                    quantity_wh=quantity,
                    price_ticks=price,
                    interval=interval,
                    zone=agent.site.zone,
                    source=agent.site.source,
                )
                sent += 1
            except OrderRefused as exc:
                self.say(f"{agent.site.name}: order refused: {exc}")
        clock = self._clock(interval)
        self.say(f"interval {interval} ({clock}): {sent} orders placed through the API")
        return sent

    def _print(self, interval: int, placed: int) -> None:
        chain = self.chain
        orders = chain.book_len(interval)
        clearing = chain.clearing(interval)
        report = chain.settlement_report(interval)
        attempt = queries.committed_clearing_attempt(DataDir(self.data_dir).ops(), interval)
        settled_block = chain.settled_at(interval)
        price = (
            clearing.zone_prices[0][1]
            if clearing and clearing.mechanism == "uniform" and clearing.zone_prices
            else None
        )
        totals = report["totals"]
        clock = self._clock(interval)
        result = {
            "interval": interval,
            "clock": clock,
            "orders": orders,
            "orders_placed_via_api": placed,
            "volume_wh": clearing.volume_wh if clearing else 0,
            "price": price,
            "matches": clearing.match_count if clearing else 0,
            "block": clearing.block_number if clearing else None,
            "block_hash": attempt["block_hash"] if attempt else None,
            "extrinsic_index": attempt["extrinsic_index"] if attempt else None,
            "commit_latency_ms": attempt["commit_latency_ms"] if attempt else None,
            "settlement": {
                "block": settled_block,
                "participants": len(report["parties"]) - 1,
                "shortfall_wh": totals["shortfall_wh"],
                "surplus_wh": totals["surplus_wh"],
                "money_sum_units": totals["net_money"],
                "money_sum_brl": totals["net_money_brl"],
                "energy_sum_wh": totals["energy_position_wh"],
                "balanced": report["balanced"],
            },
        }
        self.results.append(result)
        if self.as_json:
            print(json.dumps(result, separators=(",", ":")), file=self.out, flush=True)
        else:
            s = result["settlement"]
            print(
                f"interval {interval} ({clock}): {orders} orders, "
                f"cleared {result['volume_wh']} Wh at "
                f"{price if price is not None else '-'} ticks/kWh in block #{result['block']} "
                f"| settled in block #{s['block']}: {s['participants']} participants, "
                f"utility shortfall {s['shortfall_wh']} Wh, "
                f"surplus {s['surplus_wh']} Wh, money sum {s['money_sum_brl']} BRL, energy sum "
                f"{s['energy_sum_wh']} Wh, {'balanced' if s['balanced'] else 'NOT BALANCED'}",
                file=self.out,
                flush=True,
            )


def run_demo(
    intervals: int, data_dir: Path | None = None, *, as_json: bool = False, **kwargs
) -> int:
    return Demo(intervals, data_dir or default_data_dir(), as_json=as_json, **kwargs).run()


__all__ = ["Demo", "run_demo"]
