"""An API of several processes (`api_processes`, issue 11's throughput): uvicorn's worker
processes share the port, and `/metrics` adds up what each counted (prometheus-client's
multiprocess mode), so whichever process answers a scrape reports every order refused. With
each process reporting only its own, the scrapes would disagree and fall short. And no worker
outlives the API killed -9 (issue 11, "Supervision")."""

from __future__ import annotations

import os
import signal
import time

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_api_offline import body

from wattchain.node import free_port
from wattchain.processes import Child, wait_http

REFUSED = 40


def gone(worker: psutil.Process) -> bool:
    try:
        return worker.status() == psutil.STATUS_ZOMBIE  # an orphan's, for init to reap
    except psutil.NoSuchProcess:
        return True


def refused(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "wattchain_orders_refused_total"
    )


@pytest.mark.chain
def test_two_api_processes_share_the_port_and_count_together(start_node, tmp_path):
    node = start_node()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = Child(
        ["api", "--data", str(tmp_path), "--node", node.url, "--port", str(port)]
        + ["--processes", "2"],
        tmp_path / "api.log",
    ).start()
    try:
        wait_http(f"{url}/health", 60, api)
        # uvicorn's workers (multiprocessing also starts its resource tracker)
        children = psutil.Process(api.pid).children()
        workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2, (workers, (tmp_path / "api.log").read_text())
        # Each on a connection of its own, so that both processes take some.
        for i in range(REFUSED):
            order = body(client_order_id=i)  # signed over another chain's genesis
            response = httpx.post(f"{url}/orders", json=order, timeout=10)
            assert response.status_code == 400, response.text
        scrapes = [httpx.get(f"{url}/metrics", timeout=10).text for _ in range(6)]
        assert [refused(text) for text in scrapes] == [REFUSED] * 6
        assert all("wattchain_api_node_reachable 1.0" in text for text in scrapes)

        os.kill(api.pid, signal.SIGKILL)  # uvicorn's process alone, as a crash
        api.process.wait(5)
        deadline = time.monotonic() + 10
        while not all(gone(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(w) for w in workers), f"workers {workers} outlived the API"
    finally:
        api.stop()
        try:  # what a failed check left behind (the API's group outlives its leader)
            os.killpg(api.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
