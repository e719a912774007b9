"""Locust users for the WattChain API: traders that sign and POST orders, and readers of the
order book; a load shape that ramps up, holds and stops. Bounded in count (an order budget)
and in time (the shape ends), and loopback only.

    python -m load_tests.prepare --node ws://127.0.0.1:9944 --traders 20 > /tmp/keys
    WATTCHAIN_LOAD_KEYS=$(head -1 /tmp/keys) locust -f load_tests/locustfile.py --headless \\
        --host http://127.0.0.1:8000 --csv /tmp/wattchain-load

Environment: WATTCHAIN_LOAD_KEYS (comma-separated secret URIs of registered, funded traders;
default: the prepare script's //WattChain/load/0..19), WATTCHAIN_LOAD_ORDERS (order budget,
default 3000), WATTCHAIN_LOAD_STAGES ("seconds:users,..." default "15:5,30:20,45:40,60:40").
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from urllib.parse import urlparse

from locust import HttpUser, LoadTestShape, between, events, task

from api.client import fresh_client_order_id, order_body
from market import MarketParams, OrderSpec, keypair

KEYS = [
    keypair(uri)
    for uri in os.environ.get(
        "WATTCHAIN_LOAD_KEYS", ",".join(f"//WattChain/load/{i}" for i in range(20))
    ).split(",")
    if uri
]
ORDER_BUDGET = int(os.environ.get("WATTCHAIN_LOAD_ORDERS", "3000"))
STAGES = [
    tuple(int(x) for x in stage.split(":"))
    for stage in os.environ.get("WATTCHAIN_LOAD_STAGES", "15:5,30:20,45:40,60:40").split(",")
]

_budget = itertools.count()
_spent = threading.Event()  # the order budget is used up: the shape ends the test
_market_lock = threading.Lock()
_market: dict = {}


@events.test_start.add_listener
def _loopback_only(environment, **_):
    host = urlparse(environment.host or "").hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to load {host!r}: these load tests run against loopback only")


def market(client) -> tuple[bytes, MarketParams, int]:
    """Genesis, parameters and the next open interval, refreshed at most every 2 s."""
    with _market_lock:
        if not _market or time.monotonic() - _market["at"] > 2:
            m = client.get("/market", name="/market").json()
            _market.update(
                at=time.monotonic(),
                genesis=bytes.fromhex(m["genesis_hash"][2:]),
                params=MarketParams(**m["params"]),
                next=m["next_open_interval"],
            )
        return _market["genesis"], _market["params"], _market["next"]


class Trader(HttpUser):
    """Signs orders with a registered trader's key and posts them; reads the book now and then."""

    wait_time = between(0.05, 0.2)

    def on_start(self):
        self.key = random.choice(KEYS)
        self.rng = random.Random()
        # A participant buys or sells in an interval, never both (the chain refuses a
        # self-trade): each key keeps one side.
        self.side = "bid" if KEYS.index(self.key) % 2 == 0 else "offer"

    @task(5)
    def place_order(self):
        if next(_budget) >= ORDER_BUDGET:
            _spent.set()
            return
        genesis, params, interval = market(self.client)
        side = self.side
        spec = OrderSpec(
            client_order_id=fresh_client_order_id(),
            interval=interval,
            side=side,
            quantity_wh=self.rng.randint(100, 2_000),
            price_ticks=self.rng.randint(params.feed_in_ticks, params.utility_tariff_ticks),
            source="grid_mix" if side == "bid" else "solar",
        )
        with self.client.post(
            "/orders",
            json=order_body(self.key, genesis, spec),
            name="POST /orders",
            catch_response=True,
        ) as response:
            if response.status_code == 202:
                response.success()
            elif response.status_code == 422 and response.json().get("error") == "GateClosed":
                response.success()  # raced the gate: a correct refusal, not a failure
            else:
                response.failure(f"{response.status_code} {response.text[:200]}")

    @task(2)
    def read_book(self):
        _, _, interval = market(self.client)
        self.client.get(
            f"/intervals/{interval - 1}/book", params={"limit": 50}, name="GET /intervals/{k}/book"
        )


class RampHoldStop(LoadTestShape):
    """(end second, users) stages; after the last one, or once the order budget is spent, the
    test stops."""

    def tick(self):
        if _spent.is_set():
            return None
        run_time = self.get_run_time()
        for end, users in STAGES:
            if run_time < end:
                return users, max(1, users // 5)
        return None
