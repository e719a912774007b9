"""Locust users for `wattchain bench api` (`make loadtest`): order intake at a target rate.

The orders are signed before the run (WATTCHAIN_LOAD_ORDERS_FILE: JSON lines of
{"interval", "gate_ms", "body"}, in interval order), so the generator only sends them. Each
user sends at `WATTCHAIN_LOAD_USER_RATE` orders/s on a fixed schedule (`paced`); the shape ramps the
users up to the target rate, holds it, then bursts to `WATTCHAIN_LOAD_BURST`x the rate just
before a gate. A user takes the next order of the earliest interval whose gate is still far
enough away (`WATTCHAIN_LOAD_MARGIN_MS`), so no order is sent knowing it is late.

With `WATTCHAIN_LOAD_BATCH_SHARE` above 0, that share of the orders comes from aggregators (a
retailer or a cooperative placing its members' orders): each sends POST /orders/batch with
`WATTCHAIN_LOAD_BATCH_SIZE` orders at the same orders/s as a trader, and each order of a batch
counts by its own answer in the results.

Every 202 is recorded as (owner, client_order_id, interval) in WATTCHAIN_LOAD_ACKS_FILE at the
end, for the orchestrator to follow to the chain, with the count of each outcome, and the same
per tenth of a second (`timeline`, keyed by unix time x 10) so the orchestrator can tell what
the load saw while a part it killed was down. A 503 RelayBacklog or 429 RateLimited is an
honest refusal (counted, not a failure); anything else but a 202 is a failure here. A request
with no answer at all (the API down) is `0 <the error's type>`.

Environment: WATTCHAIN_LOAD_ORDERS_FILE, WATTCHAIN_LOAD_ACKS_FILE, WATTCHAIN_LOAD_RATE (orders/s
held), WATTCHAIN_LOAD_USER_RATE (default 10), WATTCHAIN_LOAD_RAMP_S, WATTCHAIN_LOAD_HOLD_S,
WATTCHAIN_LOAD_BURST_S, WATTCHAIN_LOAD_BURST (default 2), WATTCHAIN_LOAD_MARGIN_MS (default 5000),
WATTCHAIN_LOAD_INTERVAL_MS (the market's interval, for the burst's timing),
WATTCHAIN_LOAD_BATCH_SHARE (default 0), WATTCHAIN_LOAD_BATCH_SIZE (default 25).
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from collections import Counter, deque

from locust import FastHttpUser, LoadTestShape, events, task

ENV = os.environ
RATE = float(ENV.get("WATTCHAIN_LOAD_RATE", "100"))
USER_RATE = float(ENV.get("WATTCHAIN_LOAD_USER_RATE", "10"))
RAMP_S = float(ENV.get("WATTCHAIN_LOAD_RAMP_S", "10"))
HOLD_S = float(ENV.get("WATTCHAIN_LOAD_HOLD_S", "30"))
BURST_S = float(ENV.get("WATTCHAIN_LOAD_BURST_S", "5"))
BURST = float(ENV.get("WATTCHAIN_LOAD_BURST", "2"))
MARGIN_MS = int(ENV.get("WATTCHAIN_LOAD_MARGIN_MS", "5000"))
INTERVAL_MS = int(ENV.get("WATTCHAIN_LOAD_INTERVAL_MS", "20000"))
BATCH_SHARE = float(ENV.get("WATTCHAIN_LOAD_BATCH_SHARE", "0"))
BATCH_SIZE = int(ENV.get("WATTCHAIN_LOAD_BATCH_SIZE", "25"))


def _load_orders() -> deque:
    path = ENV.get("WATTCHAIN_LOAD_ORDERS_FILE")
    if not path:
        return deque()
    with open(path) as f:
        return deque(json.loads(line) for line in f if line.strip())


ORDERS = _load_orders()  # gevent runs one user at a time: a plain deque is safe
ACKS: list[tuple[str, int, int]] = []
OUTCOMES: Counter[str] = Counter()
TIMELINE: dict[int, Counter[str]] = {}  # tenth of a unix second -> outcomes, 202 included


def _seen(outcome: str) -> None:
    TIMELINE.setdefault(int(time.time() * 10), Counter())[outcome] += 1


def next_order() -> dict | None:
    """The next order whose gate is at least MARGIN_MS away; older ones are dropped unsent."""
    now = time.time_ns() // 1_000_000
    while ORDERS and ORDERS[0]["gate_ms"] - MARGIN_MS <= now:
        ORDERS.popleft()
        OUTCOMES["expired unsent"] += 1
    return ORDERS.popleft() if ORDERS else None


@events.test_start.add_listener
def _settle_heap(**_):
    # The orders signed for the run (hundreds of thousands of dicts) live until they are sent:
    # out of the garbage collector's full passes, which stopped every user for 50-100 ms about
    # every 10 s, and Locust counted those pauses in the API's answer times.
    gc.collect()
    gc.freeze()


@events.test_stop.add_listener
def _write_acks(**_):
    path = ENV.get("WATTCHAIN_LOAD_ACKS_FILE")
    if path:
        with open(path, "w") as f:
            json.dump({"acks": ACKS, "outcomes": OUTCOMES, "timeline": TIMELINE}, f)


def _refused(status: int, error: str) -> bool:
    """An honest refusal with Retry-After, not a lost order."""
    return (status, error) in ((503, "RelayBacklog"), (429, "RateLimited"))


def _count(order: dict, status: int, error: str) -> bool:
    """Record one order's answer; whether it is a failure."""
    if status == 202:
        body = order["body"]
        ACKS.append((body["owner"], body["client_order_id"], order["interval"]))
        _seen("202")
        return False
    outcome = f"{status} {error}".strip()
    OUTCOMES[outcome] += 1
    _seen(outcome)
    return not _refused(status, error)


def _error(response) -> str:
    if response.status_code == 0:  # no answer: connection refused or reset
        return type(response.error).__name__ if response.error else "NoAnswer"
    try:
        return response.json().get("error", "")
    except ValueError:
        return ""


def paced(rate: float):
    """A user's wait_time: `rate` requests a second on a fixed schedule. After a slow answer
    the user sends at once until it is back on schedule (up to a second behind; further
    behind, it starts again from now). Locust's constant_throughput forgets the time a slow
    answer took, so the load eased off exactly when the API was slow and a run could not
    offer the rate it was asked for."""
    period = 1.0 / rate

    def wait_time(user) -> float:
        now = time.monotonic()
        due = getattr(user, "due", now) + period
        if due < now - 1.0:
            due = now
        user.due = due
        return max(0.0, due - now)

    return wait_time


class Trader(FastHttpUser):
    """A trader: one order per request."""

    weight = max(0, round(100 * (1 - BATCH_SHARE)))
    abstract = weight == 0
    wait_time = paced(USER_RATE)

    @task
    def place_order(self):
        order = next_order()
        if order is None:
            OUTCOMES["no order left"] += 1
            return
        with self.client.post(
            "/orders", json=order["body"], name="POST /orders", catch_response=True
        ) as response:
            status = response.status_code
            error = "" if status == 202 else _error(response)
            if _count(order, status, error):
                response.failure(f"{status} {error}: {response.text[:200]}")
            else:
                response.success()


class Aggregator(FastHttpUser):
    """An aggregator: BATCH_SIZE orders per request, USER_RATE orders/s like a trader."""

    weight = max(0, round(100 * BATCH_SHARE))
    abstract = weight == 0
    wait_time = paced(USER_RATE / BATCH_SIZE)

    @task
    def place_orders(self):
        batch = [order for order in (next_order() for _ in range(BATCH_SIZE)) if order]
        if not batch:
            OUTCOMES["no order left"] += 1
            return
        with self.client.post(
            "/orders/batch",
            json={"orders": [order["body"] for order in batch]},
            name="POST /orders/batch",
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                answers = [
                    (r["status"], r["body"].get("error", "")) for r in response.json()["results"]
                ]
            else:
                answers = [(response.status_code, _error(response))] * len(batch)
            failed = [a for order, a in zip(batch, answers) if _count(order, *a)]
            if failed:
                response.failure(f"{len(failed)} of {len(batch)} orders failed: {failed[0]}")
            else:
                response.success()


class RampHoldBurst(LoadTestShape):
    """Users for RATE orders/s: ramp up over RAMP_S, hold HOLD_S, then BURST x the rate for
    BURST_S, timed to end just before a gate closes; then stop."""

    def __init__(self):
        super().__init__()
        self.burst_at: float | None = None

    def tick(self):
        t = self.get_run_time()
        users = max(1, math.ceil(RATE / USER_RATE))
        if t < RAMP_S:
            return max(1, math.ceil(users * t / RAMP_S)), users
        if t < RAMP_S + HOLD_S:
            return users, users
        if self.burst_at is None:
            # The burst ends when the earliest open interval stops taking orders (MARGIN_MS
            # before its gate; gates are INTERVAL_MS apart): the moment many clients send at once.
            now_ms = time.time_ns() // 1_000_000
            gate_ms = ORDERS[0]["gate_ms"] if ORDERS else now_ms + INTERVAL_MS
            wait = (gate_ms - MARGIN_MS - now_ms) / 1000 - BURST_S
            # The next such moment: the next order may be intervals ahead of the clock (a fast
            # load uses up an interval's orders before its gate), and waiting for its gate
            # held the rate up to a minute longer than asked, past the orders signed for it.
            self.burst_at = t + wait % (INTERVAL_MS / 1000)
        if t < self.burst_at:
            return users, users
        if t < self.burst_at + BURST_S:
            burst = math.ceil(users * BURST)
            return burst, burst
        return None
