"""The API's Prometheus metrics (issue 11, "Metrics"): `/metrics` serves the text format, and
its counters move with each accepted and refused order and cancel (by reason), the order log's
commit latency with each append. Against the stand-in chain view: no node."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from test_api_offline import BOB, GENESIS, FakeChainView, body

from api.app import create_app
from api.client import cancel_body
from api.metrics import forget_dead_processes
from market.settings import Settings


@pytest.fixture
def api(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, order_margin_ms=4_000), chain=FakeChainView())
    with TestClient(app) as client:
        yield client


def scrape(api) -> dict[tuple[str, tuple], float]:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def moved(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_orders_accepted_and_refused_by_reason(api):
    before = scrape(api)
    bad = body(client_order_id=1)
    bad["signature"] = "0x" + "00" * 64
    assert api.post("/orders", json=bad).status_code == 400
    assert api.post("/orders", json=body(client_order_id=2, price_ticks=0)).status_code == 422
    assert api.post("/orders", json={**body(), "quantity_wh": 1.5}).status_code == 422
    assert api.post("/orders", json=body(client_order_id=3)).status_code == 202
    assert api.post("/orders", json=body(client_order_id=3)).status_code == 202  # a replay
    assert (
        api.request(
            "DELETE", f"/orders/{BOB.ss58_address}/3", json=cancel_body(BOB, GENESIS, 3)
        ).status_code
        == 202
    )
    unknown = api.request(
        "DELETE", f"/orders/{BOB.ss58_address}/9", json=cancel_body(BOB, GENESIS, 9)
    )
    assert unknown.status_code == 404
    big = api.post("/orders", content=b"x" * 70_000, headers={"content-type": "application/json"})
    assert big.status_code == 413
    batch = api.post(
        "/orders/batch",
        json={"orders": [body(client_order_id=4), body(client_order_id=5, price_ticks=0)]},
    )
    assert [r["status"] for r in batch.json()["results"]] == [202, 422]
    after = scrape(api)

    refused = "wattchain_orders_refused_total"
    assert moved(before, after, "wattchain_orders_accepted_total") == 3  # a batch's by order
    assert moved(before, after, refused, reason="BadSignature") == 1
    assert moved(before, after, refused, reason="PriceOutOfBounds") == 2
    assert moved(before, after, refused, reason="InvalidRequest") == 1
    assert moved(before, after, refused, reason="BodyTooLarge") == 1
    assert moved(before, after, "wattchain_cancels_accepted_total") == 1
    assert moved(before, after, "wattchain_cancels_refused_total", reason="UnknownOrder") == 1
    # One commit (fsync) per logged entry or batch: the order, the cancel and the batch (the
    # replay logs nothing).
    assert moved(before, after, "wattchain_order_log_commit_seconds_count") == 3
    assert moved(before, after, "wattchain_order_log_commit_seconds_sum") > 0
    # Reads are not counted as orders.
    api.get(f"/orders/{BOB.ss58_address}/3")
    assert scrape(api).get(("wattchain_orders_accepted_total", ())) == after.get(
        ("wattchain_orders_accepted_total", ())
    )
    assert after[("wattchain_api_node_reachable", ())] == 1.0


def test_metrics_stay_out_of_the_published_schema(api):
    assert "/metrics" not in api.get("/openapi.json").json()["paths"]


def test_a_dead_api_process_is_left_out_of_the_live_gauges(tmp_path):
    # With several API processes each writes its gauges to files of its own. One that read the
    # node as unreachable and then died must not hold the gauge at 0 after its replacement.
    def process_reading(reachable: float) -> subprocess.Popen:
        code = (
            "import sys; from api.metrics import NODE_REACHABLE; "
            f"NODE_REACHABLE.set({reachable}); sys.stdin.read()"
        )
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE)

    def reachable() -> float | None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(tmp_path))
        text = generate_latest(registry).decode()
        values = [
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "wattchain_api_node_reachable"
        ]
        return values[0] if values else None

    alive, dying = process_reading(1.0), process_reading(0.0)
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("gauge_livemin_*.db"))) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert reachable() == 0.0  # the lowest of the live processes'
    dying.kill()
    dying.wait(10)
    assert reachable() == 0.0  # its file remains: read as live
    forget_dead_processes(tmp_path)
    assert reachable() == 1.0  # the one left alive
    alive.communicate(b"", timeout=10)
    forget_dead_processes(tmp_path)
    assert reachable() is None
