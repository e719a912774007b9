"""The trading path end to end, on a real node with the API and the workers as real processes:
orders over HTTP are relayed, cleared at gate closure and committed; the chain's clearing is
what the matcher computes from the chain's orders; settlement balances money and energy to
zero; each bad order gets its 4xx; a kill -9 of the API (and of the workers) loses nothing
that was acknowledged.

The tests of this module run in order and share one market (one node, one data folder)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest
from e2e_helpers import (
    DISTRIBUTOR,
    accessibility_problems,
    browser_page,
    screenshot,
    setup_participants,
    wait_until,
)

import matcher
from api.client import Client, OrderRefused, fresh_client_order_id, order_body
from chain import PALLET, Chain, ChainError
from market import OrderSpec, interval_clock, keypair, now_ms, sign_order
from meter_bridge import Accreditation, MeterKey, sign_reading, start_simulator
from meter_bridge.reading import RawReading
from offchain.scheduler import book_for_clearing
from store import DataDir, alert, transaction
from wattchain.node import DevNode, free_port
from wattchain.processes import Child, start_api, start_ingest, start_workers, wait_http

PROSUMERS = ["//E2E/trader/0", "//E2E/trader/1"]
CONSUMERS = ["//E2E/trader/2", "//E2E/trader/3"]
TRADERS = PROSUMERS + CONSUMERS
POOR = "//E2E/poor"
STRANGER = "//E2E/unregistered"
READER = "//Eve"  # pays the readings' fees


@dataclass
class Market:
    root: Path
    node: DevNode
    chain: Chain
    api: Child
    workers: Child
    port: int
    meters: dict[str, MeterKey]
    counters: dict[str, int] = field(default_factory=dict)
    registers: dict[str, list[int]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Client:
        return Client(self.url)

    def logs(self) -> str:
        out = []
        for name in ("workers", "api", "node"):
            path = self.root / "logs" / f"{name}.log"
            if path.exists():
                out.append(
                    f"--- {name}.log (tail)\n"
                    + "\n".join(path.read_text(errors="replace").splitlines()[-40:])
                )
        return "\n".join(out)

    def restart_api(self) -> None:
        self.api = start_api(self.root, self.node.url, self.port, self.root / "logs" / "api.log")
        wait_http(f"{self.url}/health", 90, self.api)

    def restart_workers(self) -> None:
        self.workers = start_workers(self.root, self.node.url, self.root / "logs" / "workers.log")

    def submit_readings(self, interval: int) -> None:
        """Each meter reports its cumulative registers at the end of `interval` (the ingest
        worker's job): prosumers export about 600 Wh an interval, consumers import about 500."""
        reader = keypair(READER)
        txs = []
        for i, (uri, key) in enumerate(self.meters.items()):
            imp, exp = self.registers.setdefault(uri, [10_000, 5_000])
            if uri in PROSUMERS:
                exp += 550 + 37 * i + interval % 50
                imp += 20
            else:
                imp += 480 + 23 * i + interval % 40
            self.registers[uri] = [imp, exp]
            counter = self.counters.get(uri, 0) + 1
            self.counters[uri] = counter
            raw = RawReading(
                model="sdm630", import_wh=imp, export_wh=exp, power_w=0, timestamp_ms=now_ms()
            )
            accreditation = Accreditation(
                self.chain.genesis_hash, self.chain.meter_epoch(key.public_key_hex)
            )
            r = sign_reading(raw, key, accreditation, interval, counter)
            txs.append(
                self.chain.submit_nowait(
                    reader,
                    "submit_reading",
                    Chain.reading_params(
                        r.meter,
                        r.epoch,
                        r.interval,
                        r.counter,
                        r.import_wh,
                        r.export_wh,
                        r.signature,
                    ),
                )
            )
        for receipt in self.chain.wait(txs, timeout_s=60):
            receipt.raise_for_error()


@pytest.fixture(scope="module")
def market(node_binary, tmp_path_factory):
    root = tmp_path_factory.mktemp("market")
    node = DevNode(node_binary, log_path=root / "logs" / "node.log").start()
    chain = Chain(node.url).connect()
    meters = {uri: MeterKey.from_uri(f"{uri}/meter") for uri in TRADERS}
    setup_participants(
        chain, TRADERS, meters={uri: key.public_key_hex for uri, key in meters.items()}
    )
    setup_participants(chain, [POOR], fund_brl=1)
    port = free_port()
    workers = start_workers(root, node.url, root / "logs" / "workers.log")
    api = start_api(root, node.url, port, root / "logs" / "api.log")
    m = Market(root, node, chain, api, workers, port, meters)
    try:
        wait_http(f"{m.url}/health", 90, api)
        yield m
    finally:
        for child in (m.api, m.workers):
            child.stop()
        chain.close()
        node.stop()


def body(signer, genesis: bytes, **kw) -> dict:
    spec = dict(
        client_order_id=fresh_client_order_id(), side="bid", quantity_wh=500, price_ticks=80, zone=0
    )
    spec.update(kw)
    return order_body(signer, genesis, OrderSpec(**spec))


def test_each_bad_order_gets_its_4xx(market):
    client = market.client()
    m = client.market()
    genesis = bytes.fromhex(m["genesis_hash"][2:])
    k = m["next_open_interval"] + 40  # far after the intervals the other tests trade
    trader, poor, stranger = keypair(TRADERS[0]), keypair(POOR), keypair(STRANGER)
    forged = body(trader, genesis, interval=k)
    forged["quantity_wh"] += 1  # signed for another quantity
    ok = body(trader, genesis, interval=k)
    cases = [
        ((400, "BadSignature"), forged),
        ((400, "BadSignature"), body(trader, bytes(32), interval=k)),  # signed for another chain
        ((400, "InvalidAccount"), {**ok, "owner": "5NotAnAddress"}),
        ((403, "NotRegistered"), body(stranger, genesis, interval=k)),
        ((422, "WrongZone"), body(trader, genesis, interval=k, zone=9)),
        ((422, "ZeroQuantity"), body(trader, genesis, interval=k, quantity_wh=0)),
        (
            (422, "QuantityTooLarge"),
            body(trader, genesis, interval=k, quantity_wh=m["params"]["max_quantity_wh"] + 1),
        ),
        (
            (422, "PriceOutOfBounds"),
            body(trader, genesis, interval=k, price_ticks=m["params"]["max_price_ticks"] + 1),
        ),
        (
            (422, "InvalidEnergyConstraint"),
            body(trader, genesis, interval=k, side="offer", source="solar", renewable_only=True),
        ),
        # The traders' meters measure solar.
        ((422, "SourceNotMetered"), body(trader, genesis, interval=k, side="offer", source="wind")),
        ((422, "GateClosed"), body(trader, genesis, interval=m["current_interval"])),
        (
            (422, "IntervalTooFarAhead"),
            body(trader, genesis, interval=m["current_interval"] + m["max_intervals_ahead"] + 2),
        ),
        (
            (422, "InsufficientBalance"),
            body(poor, genesis, interval=k, quantity_wh=10_000, price_ticks=500),
        ),
        ((422, "InvalidRequest"), {**ok, "price_ticks": "80"}),
        ((422, "InvalidRequest"), {key: v for key, v in ok.items() if key != "signature"}),
    ]
    for (status, reason), request in cases:
        response = httpx.post(f"{market.url}/orders", json=request)
        assert (response.status_code, response.json().get("error")) == (status, reason), (
            reason,
            response.text,
        )
    accepted = httpx.post(f"{market.url}/orders", json=ok)
    assert accepted.status_code == 202
    assert httpx.post(f"{market.url}/orders", json=ok).json() == accepted.json()
    clash = httpx.post(
        f"{market.url}/orders",
        json={
            **body(
                trader, genesis, interval=k, client_order_id=ok["client_order_id"], price_ticks=81
            )
        },
    )
    assert (clash.status_code, clash.json()["error"]) == (409, "ClientOrderIdReused")
    # The accepted one reaches the chain.
    on_chain = wait_until(
        lambda: (
            client.order(trader.ss58_address, ok["client_order_id"])["relay_status"] == "onchain"
        ),
        60,
        "the accepted order on chain",
    )
    assert on_chain
    assert market.chain.client_order_id(trader.ss58_address, ok["client_order_id"]) is not None


def test_an_order_that_conflicts_on_chain_cannot_poison_a_relayed_batch(market):
    """A participant places an order on chain directly, then sends another order under the same
    client order id among honest ones. The pallet refuses that one alone, by name; the honest
    orders of the same batch are placed."""
    chain, client = market.chain, market.client()
    k = client.market()["next_open_interval"] + 41
    owner, other = keypair(TRADERS[1]), keypair(TRADERS[2])

    def bid(signer, **kw):
        spec = OrderSpec(fresh_client_order_id(), k, "bid", 500, 80, 0)
        return sign_order(signer, chain.genesis_hash, replace(spec, **kw))

    # Straight to the pallet, as the relayer sends it.
    taken = bid(owner)
    chain.submit(owner, "place_order", {"spec": taken.spec.to_call_arg()})
    conflicting = bid(owner, client_order_id=taken.spec.client_order_id, price_ticks=81)
    honest = [bid(owner), bid(other)]
    receipt = chain.place_orders_relayed(keypair(READER), [honest[0], conflicting, honest[1]])
    refused = [(o, c, e) for (o, c), e in chain.refusals(receipt, "RelayedOrderRefused").items()]
    assert refused == [(owner.ss58_address, taken.spec.client_order_id, "ClientOrderIdReused")]
    assert len(receipt.find(PALLET, "OrderPlaced")) == 2
    assert all(chain.client_order_id(o.owner, o.spec.client_order_id) for o in honest)

    # Through the API and the relayer, racing the index: the conflicting order is refused with
    # a 409 (the index saw the chain's) or relayed and rejected by the chain, never more.
    taken = bid(owner)
    chain.submit(owner, "place_order", {"spec": taken.spec.to_call_arg()})
    conflicting = bid(owner, client_order_id=taken.spec.client_order_id, price_ticks=81)
    honest = [bid(owner), bid(other)]
    bodies = [
        order_body(keypair(uri), chain.genesis_hash, o.spec)
        for uri, o in zip(TRADERS[1:3] + TRADERS[1:2], [honest[0], honest[1], conflicting])
    ]
    results = client.send_orders(bodies)
    assert all(isinstance(r, dict) for r in results[:2]), results
    for o in honest:
        wait_until(
            lambda o=o: client.order(o.owner, o.spec.client_order_id)["relay_status"] == "onchain",
            30,
            "the honest orders on chain",
        )
    if isinstance(results[2], OrderRefused):
        assert (results[2].status, results[2].error) == (409, "ClientOrderIdReused")
    else:
        # Once indexed, the chain's order is the answer and ours is shown apart.
        def refused():
            order = client.order(owner.ss58_address, taken.spec.client_order_id)
            entry = order.get("conflicting_submission") or order
            return entry.get("relay_error") == "ClientOrderIdReused"

        wait_until(refused, 30, "the conflicting order rejected by the chain")


def test_the_live_api_keeps_to_its_published_schema(market, tmp_path):
    """Schemathesis against the live API on the real node: generated and mutated requests on
    every operation get no server error and only answers the OpenAPI schema documents (status,
    content type, headers, body). Every check runs but those the schema cannot express
    (tests/e2e/schemathesis.toml says which and why); a fixed seed keeps the gate repeatable."""
    cli = Path(sys.executable).with_name("schemathesis")
    config = Path(__file__).with_name("schemathesis.toml")
    run = subprocess.run(
        [str(cli), "--no-color", "--config-file", str(config), "run", f"{market.url}/openapi.json"]
        + ["--workers", "1", "--seed", "20261201", "--phases", "coverage,fuzzing,stateful"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-6_000:] + run.stderr[-2_000:]
    assert "generated" in run.stdout and " passed" in run.stdout


class StreamReader(threading.Thread):
    def __init__(self, url: str, timeout_s: float):
        super().__init__(daemon=True)
        self.url, self.timeout_s = url, timeout_s
        self.events: list[tuple[str, dict]] = []

    def run(self):
        with Client(self.url) as client:
            try:
                for event in client.stream(after=0, timeout_s=self.timeout_s):
                    self.events.append(event)
            except httpx.HTTPError:
                pass


def test_three_intervals_cleared_committed_and_settled(market):
    chain, client = market.chain, market.client()
    params = chain.market_params()
    k0 = params.first_open_interval(
        now_ms(), 14_000
    )  # time to place, relay and cancel before the gate
    intervals = [k0, k0 + 1, k0 + 2]
    stream = StreamReader(market.url, timeout_s=240)
    stream.start()
    start_balance = {uri: chain.balance(keypair(uri).ss58_address).total for uri in TRADERS}

    # Orders for the three intervals, over HTTP, signed by their owners.
    placed: dict[int, list[dict]] = {k: [] for k in intervals}
    for n, k in enumerate(intervals):
        for i, uri in enumerate(PROSUMERS):
            placed[k].append(
                client.place_order(
                    keypair(uri),
                    "offer",
                    quantity_wh=400 + 50 * i + 10 * n,
                    price_ticks=40 + 5 * i + n,
                    interval=k,
                    source="solar",
                )
            )
        for i, uri in enumerate(CONSUMERS):
            placed[k].append(
                client.place_order(
                    keypair(uri),
                    "bid",
                    quantity_wh=350 + 40 * i,
                    price_ticks=70 - 10 * i + n,
                    interval=k,
                )
            )
        # One order per interval that no one can fill, and one that is cancelled.
        placed[k].append(
            client.place_order(
                keypair(CONSUMERS[0]), "bid", quantity_wh=100, price_ticks=31, interval=k
            )
        )
        doomed = client.place_order(
            keypair(CONSUMERS[1]), "bid", quantity_wh=100, price_ticks=90, interval=k
        )
        placed[k].append(doomed)
        wait_until(
            lambda doomed=doomed: (
                client.order(doomed["owner"], doomed["client_order_id"])["relay_status"]
                == "onchain"
            ),
            60,
            "the order to cancel on chain",
        )
        client.cancel_order(keypair(CONSUMERS[1]), doomed["client_order_id"])

    # Meters: a baseline at the end of the interval before the first, then one reading per interval.
    for j in [k0 - 1] + intervals:
        wait_until(
            lambda j=j: now_ms() >= params.interval_end(j) + 200, 120, f"end of interval {j}"
        )
        market.submit_readings(j)

    for k in intervals:
        clearing = wait_until(
            lambda k=k: _get(client, f"/intervals/{k}/clearing"),
            90,
            f"clearing of interval {k}\n{market.logs()}",
        )
        chain_clearing = chain.clearing(k)
        # What the chain holds is what the matcher computes from the chain's orders.
        orders = book_for_clearing(chain.orders_of_interval(k))
        assert len(orders) == len(placed[k]) - 1  # all that were accepted, but the cancelled one
        expected = matcher.clear_orders(
            [o.matcher_dict() for o in orders], mechanism="uniform"
        ).to_json_dict()
        assert chain_clearing.volume_wh == expected["volume_wh"] > 0
        assert chain_clearing.zone_prices == [(0, expected["price"])]
        assert [m.as_dict() for m in chain_clearing.matches] == expected["matches"]
        # The API's view carries the block and the extrinsic that committed it.
        assert (
            clearing["price"] == expected["price"]
            and clearing["volume_wh"] == expected["volume_wh"]
        )
        assert chain.block_hash(clearing["block_number"]) == clearing["block_hash"]
        accepted = [e for e in chain.events(clearing["block_hash"]) if e.name == "ClearingAccepted"]
        assert [e.extrinsic_index for e in accepted] == [clearing["extrinsic_index"]]
        assert {(t["bid"], t["offer"], t["quantity_wh"]) for t in clearing["matches"]} == {
            (m["bid"], m["offer"], m["quantity_wh"]) for m in expected["matches"]
        }
        # No order is written by the clearing (its record is the interval's): the cancelled
        # one stays cancelled and every other one open.
        statuses = [o.status for o in chain.orders_of_interval(k)]
        assert sorted(statuses) == ["cancelled"] + ["open"] * len(orders), statuses

    for k in intervals:
        report = wait_until(
            lambda k=k: _get(client, f"/intervals/{k}/settlement"),
            120,
            f"settlement of interval {k}\n{market.logs()}",
        )
        assert report["balanced"], report["problems"]
        assert report["totals"]["net_money"] == 0 and report["totals"]["energy_position_wh"] == 0
        assert chain.settlement_report(k)["parties"] == report["parties"]
        assert {p["role"] for p in report["parties"]} == {"participant", "distributor"}

    # Over the period: each trader's balance moved by exactly its net in the report (traders
    # never pay fees: the relayer submits their orders, Eve their readings).
    period = client.report(intervals[0], intervals[-1])
    assert period["balanced"] and period["period"]["intervals"] == intervals
    rows = {p["account"]: p for p in period["parties"]}
    for uri in TRADERS:
        account = keypair(uri).ss58_address
        assert chain.balance(account).total - start_balance[uri] == rows[account]["net_money"], uri
    positions = client.positions(keypair(CONSUMERS[0]).ss58_address)["items"]
    assert {p["interval"] for p in positions} >= set(intervals)

    # Energy tokens followed the energy: the consumers hold what they were delivered, as
    # measured; the prosumers, who sold their export, hold none of it.
    tokens = {keypair(uri).ss58_address: 0 for uri in TRADERS}
    for k in intervals:
        for account, wh in _delivered_tokens(chain, k).items():
            tokens[account] += wh
    assert all(tokens[keypair(uri).ss58_address] > 0 for uri in CONSUMERS), tokens
    for account, wh in tokens.items():
        assert chain.energy_balance(account) == wh, account
        assert client.get(f"/participants/{account}/balances")["energy_wh"] == wh
    assert all(chain.energy_pool(k) is None for k in intervals)
    # The index has each delivery, and what each interval retired: its export less deliveries.
    index = DataDir(market.root).index()
    delivered = dict(
        index.execute(
            "SELECT target, SUM(amount_wh) FROM energy_moves WHERE kind = 'deliver'"
            f" AND interval BETWEEN {intervals[0]} AND {intervals[-1]} GROUP BY target"
        ).fetchall()
    )
    assert delivered == {a: wh for a, wh in tokens.items() if wh}
    for k in intervals:
        (minted,) = index.execute(
            "SELECT SUM(amount_wh) FROM energy_moves WHERE kind = 'mint' AND interval = ?", (k,)
        ).fetchone()
        (retired,) = index.execute(
            "SELECT retired_wh FROM intervals_settled WHERE interval = ?", (k,)
        ).fetchone()
        assert minted - retired == sum(_delivered_tokens(chain, k).values()), k

    stream.join(5)
    kinds = {(kind, data["interval"]) for kind, data in stream.events}
    for k in intervals:
        assert ("clearing", k) in kinds and ("settlement", k) in kinds, stream.events


def _delivered_tokens(chain: Chain, k: int) -> dict[str, int]:
    """Each buyer's energy tokens for interval `k` by the chain's rule, worked out here from
    its positions, metered energy and settlement lines: what a buyer took of its purchase (net
    import up to what it bought), or its share of what sellers delivered when that is less.
    A trader settled on an estimate moves no tokens."""
    metered, lines = chain.metered(k), chain.settlement_lines(k)
    taken, delivered = {}, 0
    for uri in TRADERS:
        account = keypair(uri).ss58_address
        position = chain.query(PALLET, "Positions", [k, account])
        if position is None or lines[account]["estimated"]:
            continue
        contracted = int(position["contracted_wh"])
        energy = metered.get(account, {"import_wh": 0, "export_wh": 0})
        net_import = energy["import_wh"] - energy["export_wh"]
        if contracted > 0:
            taken[account] = max(0, min(contracted, net_import))
        else:
            delivered += max(0, min(-contracted, -net_import))
    total = sum(taken.values())
    covered = min(delivered, total)
    return {a: (t * covered // total if total else 0) for a, t in taken.items()}


def _get(client: Client, path: str):
    try:
        return client.get(path)
    except OrderRefused as exc:
        if exc.status == 404:
            return None
        raise


def test_kill9_of_the_api_and_the_workers_loses_nothing(market):
    """Orders posted continuously; the API is killed with SIGKILL mid-interval and restarted,
    the workers too. Every order that got a 202 reaches the chain, exactly once."""
    client = market.client()
    genesis = client.genesis_hash
    params = market.chain.market_params()
    k = params.first_open_interval(now_ms(), 4_000) + 2  # stays open for the whole test
    acknowledged: list[dict] = []
    refused: list[str] = []
    stop = threading.Event()

    def post_orders(uri: str):
        signer = keypair(uri)
        with httpx.Client(base_url=market.url, timeout=5) as http:
            while not stop.is_set():
                b = body(
                    signer,
                    genesis,
                    interval=k,
                    side="offer",
                    source="solar",
                    quantity_wh=10,
                    price_ticks=50,
                )
                try:
                    r = http.post("/orders", json=b)
                except httpx.HTTPError:
                    time.sleep(0.05)  # the API is down: the client retries later
                    continue
                if r.status_code == 202:
                    acknowledged.append(
                        {"owner": signer.ss58_address, "body": b, "response": r.json()}
                    )
                elif r.status_code in (429, 503) and "retry-after" in r.headers:
                    time.sleep(min(float(r.headers["retry-after"]), 2))  # a polite client
                else:
                    refused.append(r.text)

    threads = [threading.Thread(target=post_orders, args=(uri,), daemon=True) for uri in PROSUMERS]
    for t in threads:
        t.start()
    wait_until(lambda: len(acknowledged) >= 20, 30, "orders flowing")
    market.api.kill9()
    killed_at = len(acknowledged)
    market.workers.kill9()
    time.sleep(1.0)
    market.restart_workers()
    market.restart_api()
    wait_until(lambda: len(acknowledged) >= killed_at + 20, 30, "orders flowing after the restart")
    market.workers.kill9()  # again, this time while the relayer is busy
    market.restart_workers()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(10)
    assert not refused, refused[:3]

    # The same request after the crash gets the same answer.
    first = acknowledged[0]
    assert httpx.post(f"{market.url}/orders", json=first["body"]).json() == first["response"]

    chain = market.chain

    def all_on_chain():
        return all(
            client.order(a["owner"], a["body"]["client_order_id"])["relay_status"] == "onchain"
            for a in acknowledged
        )

    wait_until(
        all_on_chain, 120, f"all {len(acknowledged)} acknowledged orders on chain\n{market.logs()}"
    )
    book = chain.orders_of_interval(k)
    on_chain = {(o.owner, o.spec.client_order_id): o for o in book}
    assert len(book) == len(on_chain) == chain.book_len(k)  # nothing placed twice
    for a in acknowledged:
        o = on_chain[(a["owner"], a["body"]["client_order_id"])]
        assert (o.spec.quantity_wh, o.spec.price_ticks, o.spec.side) == (10, 50, "offer")
    # An order logged just before the kill but never answered may land too: the client saw no
    # 202, so either outcome is right; at most one per posting thread.
    extra = set(on_chain) - {(a["owner"], a["body"]["client_order_id"]) for a in acknowledged}
    assert len(extra) <= len(threads)


def charted(page, canvas: str) -> int:
    """Waits for the chart in canvas `canvas` to show data (the app's Content-Security-Policy
    rules out Playwright's evaluated predicates: a selector does it)."""
    chart = page.locator(f"#{canvas}[data-points]:not([data-points='0'])")
    chart.wait_for(timeout=30_000)
    return int(chart.get_attribute("data-points"))


def test_web_app_shows_the_market_and_a_participant_in_a_real_browser(market):
    """Chromium loads the web app from the running API. The market view charts the clearings
    the tests above committed (supply and demand, history, zone flows) with prices in R$ and
    intervals as clock times in the market's time zone; the participant view shows a buyer's
    trades in R$; English is one choice away."""
    api = market.client()
    cleared = [c for c in _get(api, "/clearings?limit=20")["items"] if c["volume_wh"] > 0]
    assert cleared, "the tests above committed clearings with trades"
    newest = cleared[0]
    detail = _get(api, f"/intervals/{newest['interval']}/clearing")
    buyer = detail["matches"][0]["buyer"]
    interval_ms = _get(api, "/market")["params"]["interval_ms"]
    clock = interval_clock(newest["interval"], interval_ms, "America/Sao_Paulo")
    with browser_page() as page:
        page.goto(market.url + "/#/market")
        page.wait_for_selector("#status:has-text('finalizado')", timeout=30_000)
        # Each recent interval's progress: the scheduler clears every interval, traded or not.
        page.locator("#progress .state-cleared, #progress .state-settled").first.wait_for(
            timeout=30_000
        )
        # The newest clearing is the one charted: its curves, price and volume.
        charted(page, "sd-chart")
        note = page.inner_text("#sd-note")
        assert clock in note and "R$" in note and "/kWh" in note, note
        assert int(page.get_attribute("#hist-chart", "data-points")) >= 2  # a bar and a price
        assert int(page.get_attribute("#flows-chart", "data-points")) == len(detail["flows"]) > 0
        assert "Oferta e demanda" in page.inner_text("main")
        assert not accessibility_problems(page)
        screenshot(page, "market")

        page.goto(market.url + f"/#/participant/{buyer}")
        page.wait_for_selector("#positions tbody tr td:has-text('R$')", timeout=30_000)
        assert "Zona 0" in page.inner_text("#who")
        # The traders' meters reported in the tests above: their energy is charted.
        charted(page, "meter-chart")
        assert not accessibility_problems(page)
        screenshot(page, "participant")
        # The clearing house's report for the period, as CSV and as PDF.
        for button, check in (
            ("Baixar CSV", lambda b: b.decode().startswith("account,")),
            ("Baixar PDF", lambda b: b.startswith(b"%PDF-") and len(b) > 2_000),
        ):
            with page.expect_download(timeout=30_000) as download:
                page.click(f"#report button:has-text('{button}')")
            body = Path(download.value.path()).read_bytes()
            assert check(body), (button, body[:80])

        page.select_option("#lang", "en")
        page.wait_for_selector("nav a:has-text('Market')")
        page.wait_for_selector("#positions th:has-text('Bought')", timeout=30_000)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        page.goto(market.url + "/#/market")
        charted(page, "sd-chart")
        assert "Supply and demand" in page.inner_text("main")
        # Nothing wider than the phone's screen but the tables' own scroll areas.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "market-phone")


def test_a_participant_trades_from_the_page_with_a_key_kept_in_the_browser(market):
    """A consumer imports its key into the page (stored encrypted with a password, never sent
    anywhere), places a bid signed in the browser, sees it in its orders and in the book; a
    neighbour's offer crosses it, and the trade shows up in the consumer's positions in R$.
    After a reload the key is locked until the password is given again."""
    buyer_uri, seller_uri = CONSUMERS[1], PROSUMERS[1]
    buyer = keypair(buyer_uri).ss58_address
    client = market.client()
    with browser_page() as page:
        page.goto(market.url + f"/#/participant/{buyer}")
        page.fill("#secret", buyer_uri)
        page.fill("#new-password", "correct horse")
        page.click("#import-form button")
        page.wait_for_selector("#order-form", timeout=30_000)
        stored = page.evaluate("localStorage.getItem('wattchain.keys')")
        assert buyer in stored and "E2E" not in stored and '"encoded"' in stored

        # The second interval offered: its gate stays open while the test places both orders.
        offered = page.locator("#o-interval option[value]:not([value=''])")
        k = int(offered.nth(1).get_attribute("value"))
        page.select_option("#o-interval", str(k))
        page.select_option("#o-side", "bid")
        page.fill("#o-kwh", "0.25")
        page.fill("#o-price", "0.90")
        page.click("#order-form button[type=submit]")
        page.wait_for_selector("#order-result.ok", timeout=30_000)  # 202: logged for relay
        # A neighbour's offer crosses the bid, sent at once: the gate closes 20-40 s from here.
        offer = body(
            keypair(seller_uri),
            client.genesis_hash,
            interval=k,
            side="offer",
            source="solar",
            quantity_wh=250,
            price_ticks=40,
        )
        assert httpx.post(market.url + "/orders", json=offer, timeout=10).status_code == 202
        page.wait_for_selector("#order-result:has-text('está na rede')", timeout=60_000)
        clock = interval_clock(k, market.chain.market_params().interval_ms, "America/Sao_Paulo")
        row = page.locator("#orders tbody tr", has_text=clock).filter(has_text="250 Wh")
        row.wait_for(timeout=30_000)
        assert "compra" in row.inner_text()
        book = client.get(f"/intervals/{k}/book?side=bid")
        assert any(o["owner"] == buyer and o["price_ticks"] == 90 for o in book["items"])

        # A second bid, a later interval, cancelled from the page before its gate.
        page.select_option("#o-interval", str(k + 1))
        later = interval_clock(
            k + 1,
            market.chain.market_params().interval_ms,
            "America/Sao_Paulo",
        )
        page.fill("#o-kwh", "0.111")
        page.click("#order-form button[type=submit]")
        second = page.locator("#orders tbody tr", has_text=later).filter(has_text="111 Wh")
        second.locator("button[data-cancel]").click(timeout=60_000)
        page.wait_for_selector("#order-result:has-text('Cancelamento')", timeout=30_000)
        second.filter(has_text="cancelada").wait_for(timeout=60_000)

        traded = page.locator("#positions tbody tr", has_text=clock)
        traded.wait_for(timeout=90_000)
        assert "250 Wh" in traded.inner_text() and "R$" in traded.inner_text()
        screenshot(page, "participant-trading")

        page.reload()
        page.wait_for_selector("#unlock-form", timeout=30_000)
        page.fill("#unlock-password", "wrong password")
        page.click("#unlock-form button")
        page.wait_for_selector("#key-error:has-text('wrong password')")
        page.fill("#unlock-password", "correct horse")
        page.click("#unlock-form button")
        page.wait_for_selector("#order-form")


def console_login(page, secret_uri: str) -> None:
    """On the operator page, for the account in its login form: import the key (kept in the
    browser under a password) and log in."""
    page.fill("#secret", secret_uri)
    page.fill("#new-password", "console password")
    page.click("#import-form button")
    page.wait_for_selector("#lock")
    page.click("#login-form button")
    page.wait_for_selector("#logout", timeout=30_000)


def test_the_operator_logs_in_accredits_a_meter_and_acknowledges_an_alert(market):
    """The operator imports its key into the console and logs in: the browser signs a login,
    the API opens a session with the chain's roles for the account. The operator accredits a
    new meter (an extrinsic signed in the browser, through governance as meters are the
    distributor's), which the index then lists, and acknowledges an alert through the API,
    which records who did. Without a session the acknowledgement is refused."""
    operator = keypair("//Alice").ss58_address
    owner = keypair(CONSUMERS[0]).ss58_address
    meter = MeterKey.from_uri("//E2E/console/meter").public_key_hex
    ops = DataDir(market.root).ops()
    with transaction(ops):
        alert(ops, "test", "MissingReadings", "a meter of the test did not report")
    (alert_id,) = ops.execute("SELECT MAX(id) FROM alerts WHERE source = 'test'").fetchone()
    newest = {"id": alert_id}
    refused = httpx.post(f"{market.url}/alerts/{newest['id']}/ack", timeout=10)
    assert (refused.status_code, refused.json()["error"]) == (401, "NotAuthenticated")

    with browser_page() as page:
        page.goto(market.url + "/#/operator")
        page.wait_for_selector("#login-form")
        assert page.input_value("#login-account") == operator  # the chain's operator
        console_login(page, "//Alice")
        assert "operador" in page.inner_text("#login")
        screenshot(page, "operator")

        form = page.locator("#accredit")
        form.locator("[name=meter]").fill(meter)
        form.locator("[name=owner]").fill(owner)
        form.locator("[name=source]").select_option("solar")
        form.locator("[name=rated]").fill("7000")
        form.locator("button").click()
        page.wait_for_selector("#accredit [role=status].ok", timeout=60_000)
        listed = wait_until(
            lambda: [
                m
                for m in market.client().get(f"/meters?owner={owner}")["items"]
                if m["meter"] == meter
            ],
            60,
            "the new meter in the index",
        )
        assert listed[0]["source"] == "solar" and not listed[0]["revoked"]

        page.locator(f"#op-alerts button[data-ack='{newest['id']}']").click()
        page.wait_for_selector("#op-alerts td:has-text('reconhecido por')", timeout=30_000)
    acked = [a for a in market.client().get("/alerts?limit=50")["items"] if a["id"] == alert_id]
    assert acked[0]["acked_by"] == operator and acked[0]["acked_ms"] > 0


def test_a_device_is_configured_on_the_page_and_the_ingest_applies_it(market, tmp_path):
    """The meter the operator accredited above runs behind a simulated Modbus meter, read by a
    meter ingest on the market's data folder. On the devices page, the distributor (logged in
    with its own key) sees it connected, changes its polling period from 10 s to 1 s, and the
    ingest applies the change without a restart: the page shows the new version applied, the
    live reads come about a second apart, and the change is recorded with who made it."""
    distributor = keypair(DISTRIBUTOR).ss58_address
    sim = start_simulator(port=0, model="sdm630", profile="consumer", speed=60)
    sites = tmp_path / "sites.json"
    sites.write_text(
        json.dumps(
            [
                {
                    "name": "casa-1",
                    "model": "sdm630",
                    "host": sim.host,
                    "port": sim.port,
                    "key_uri": "//E2E/console/meter",
                    "rated_power_w": 7000,
                }
            ]
        )
    )
    ingest = start_ingest(market.root, market.node.url, sites, market.root / "logs" / "ingest.log")
    try:
        with browser_page() as page:
            page.goto(market.url + "/#/operator")
            page.fill("#login-account", distributor)
            page.dispatch_event("#login-account", "change")
            console_login(page, DISTRIBUTOR)
            assert "distribuidora" in page.inner_text("#login")

            page.goto(market.url + "/#/devices")
            card = page.locator("[data-device='casa-1']")
            card.locator(".state-cleared:has-text('conectado')").wait_for(timeout=60_000)
            assert card.locator("[name=poll_period_s]").input_value() == "10"
            card.locator("[name=poll_period_s]").fill("1")
            card.locator("button[type=submit]").click()
            card.locator(".device-out.ok").wait_for(timeout=30_000)
            card.locator("dd:has-text('aplicada')").wait_for(timeout=30_000)
            screenshot(page, "devices")
            token = page.evaluate("JSON.parse(sessionStorage.getItem('wattchain.session')).token")
        auth = {"authorization": f"Bearer {token}"}

        def device():
            return httpx.get(f"{market.url}/devices/casa-1", headers=auth, timeout=10).json()

        d = wait_until(lambda: (d := device())["status"]["applied"] and d, 30, "the change applied")
        assert d["poll_period_s"] == 1 and d["version"] == d["status"]["applied_version"]
        seen = [d["status"]["last_ok_ms"]]
        deadline = time.monotonic() + 30
        while len(set(seen)) < 4 and time.monotonic() < deadline:
            time.sleep(0.3)
            seen.append(device()["status"]["last_ok_ms"])
        reads = sorted(set(seen))[1:]
        assert len(reads) >= 3, f"the ingest stopped reading: {seen}"
        gaps = [b - a for a, b in zip(reads, reads[1:])]
        assert all(500 <= g <= 2_500 for g in gaps), gaps  # every second, not every ten
        changes = httpx.get(f"{market.url}/devices/casa-1/changes", headers=auth, timeout=10)
        newest = changes.json()["items"][0]
        assert (newest["field"], newest["old"], newest["new"], newest["by"]) == (
            "poll_period_s",
            10,
            1,
            distributor,
        )
    finally:
        ingest.stop()
        sim.stop()


def test_every_event_of_the_market_decodes_as_substrate_interface_decodes_it(market):
    """chain/events.py decodes `System.Events` itself (scalecodec was most of the workers' time
    under load). Every event this module's market produced (orders, refusals, failed calls,
    clearings, settlements, meters, balances, fees) must come out as substrate-interface's
    decoder gives it: pallet, name, attributes and extrinsic."""
    chain = market.chain
    # A call that fails: its ExtrinsicFailed carries the pallet's error, read by its name.
    with pytest.raises(ChainError) as failed:
        chain.submit(keypair(TRADERS[0]), "cancel_order", {"client_order_id": 2**64 - 1})
    assert failed.value.name == "UnknownOrder"
    kinds = set()
    for number in range(1, chain.best_number() + 1):
        block_hash = chain.block_hash(number)
        ours = [
            (e.pallet, e.name, e.attributes, e.extrinsic_index) for e in chain.events(block_hash)
        ]
        theirs = [
            (
                r.value["module_id"],
                r.value["event_id"],
                r.value.get("attributes"),
                r.value.get("extrinsic_idx") if r.value.get("phase") == "ApplyExtrinsic" else None,
            )
            for r in chain.substrate.get_events(block_hash)
        ]
        assert ours == theirs, f"block {number}"
        kinds.update((pallet, name) for pallet, name, _, _ in ours)
    expected = {
        ("System", "ExtrinsicFailed"),
        (PALLET, "OrderPlaced"),
        (PALLET, "RelayedOrderRefused"),
        (PALLET, "ClearingAccepted"),
        (PALLET, "ClearingPageVerified"),
        (PALLET, "ReadingAccepted"),
        (PALLET, "ParticipantSettled"),
    }
    assert expected <= kinds, expected - kinds
