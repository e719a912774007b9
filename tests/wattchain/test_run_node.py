"""`wattchain run` with its real node, as the load-test recipe uses it: fixed ports, the URLs
printed once it is ready, the recipe itself (docs/api.md, "Load tests": traders prepared on
the node, Locust's locustfile against the API), its node restarted after a kill -9 (the chain
kept, the compiled runtime cached), its meter ingest restarted likewise, and nothing left
behind after a kill -9 of `run`."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from process_testkit import children_of, command_line, running, wait_for, wattchain

from chain import Chain
from wattchain.node import free_port

REPO = Path(__file__).resolve().parents[2]


def test_run_prints_its_urls_restarts_its_node_and_leaves_nothing_behind(node_binary, tmp_path):
    rpc_port, api_port = free_port(), free_port()
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    # A meter nobody serves: the ingest runs (and retries it), supervised as the other parts.
    sites = tmp_path / "sites.json"
    site = {"name": "a", "model": "sdm630", "host": "127.0.0.1", "port": free_port()}
    sites.write_text(json.dumps({"sites": [{**site, "key_uri": "//M/a"}]}))
    with open(out, "w") as stdout, open(err, "w") as stderr:
        run = wattchain(
            "run", "--data", str(tmp_path / "market"), "--sites", str(sites),
            "--rpc-port", str(rpc_port), "--api-port", str(api_port),
            env={"WATTCHAIN_NODE": str(node_binary)}, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    rpc_url, api_url = f"ws://127.0.0.1:{rpc_port}", f"http://127.0.0.1:{api_port}"
    try:
        wait_for(lambda: "api:" in out.read_text() or run.poll() is not None, 180, "ready")
        assert out.read_text() == f"rpc: {rpc_url}\napi: {api_url}\n", err.read_text()
        assert httpx.get(f"{api_url}/health", timeout=5).status_code == 200
        _the_documented_load_recipe_runs(rpc_url, api_url, tmp_path)
        chain = Chain(rpc_url).connect()
        height = chain.best_number()
        chain.close()

        (node,) = [p for p in children_of(run.pid) if "wattchain-node" in command_line(p)]
        os.kill(node, signal.SIGKILL)
        wait_for(lambda: "node restarted" in err.read_text(), 15, "the node's restart")
        assert f"node (pid {node}) died: killed by signal 9 (SIGKILL)" in err.read_text()
        chain = Chain(rpc_url).connect(timeout_s=60)
        wait_for(lambda: chain.best_number() > height, 30, "blocks on the kept chain")
        chain.close()
        # What lets a restart skip compiling the runtime (service.rs): wasmtime's cache of it.
        cache = tmp_path / "market" / "chain" / "wasm-cache"
        assert any(p.is_file() for p in cache.rglob("*")), f"nothing cached in {cache}"

        (ingest,) = [p for p in children_of(run.pid) if " ingest " in command_line(p)]
        os.kill(ingest, signal.SIGKILL)
        wait_for(lambda: "ingest restarted" in err.read_text(), 15, "the ingest's restart")
        assert f"ingest (pid {ingest}) died: killed by signal 9 (SIGKILL)" in err.read_text()

        children = children_of(run.pid)
        assert len(children) == 4  # node, workers, API, ingest
        run.kill()
        run.wait(5)
        wait_for(lambda: not any(running(p) for p in children), 5, f"{children} to die")
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGTERM)
            try:
                run.wait(30)
            except subprocess.TimeoutExpired:
                run.kill()


def _the_documented_load_recipe_runs(rpc_url: str, api_url: str, tmp_path: Path) -> None:
    """docs/api.md's recipe, with a smaller budget: it broke once against `run`, which then put
    the node on a random port it never printed."""
    keys = subprocess.run(
        [sys.executable, "-m", "load_tests.prepare", "--node", rpc_url, "--traders", "4"],
        capture_output=True, text=True, timeout=120, check=True, cwd=REPO,
    ).stdout.splitlines()[0]  # fmt: skip
    locust = Path(sys.executable).with_name("locust")
    stats = tmp_path / "load"
    run = subprocess.run(
        [str(locust), "-f", "load_tests/locustfile.py", "--headless", "--host", api_url]
        + ["--csv", str(stats), "--only-summary"],
        env={**os.environ, "WATTCHAIN_LOAD_KEYS": keys, "WATTCHAIN_LOAD_ORDERS": "60"}
        | {"WATTCHAIN_LOAD_STAGES": "20:5"},
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2_000:] + run.stderr[-2_000:]
    with open(f"{stats}_stats.csv") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    placed = rows["POST /orders"]
    assert int(placed["Request Count"]) >= 50 and int(placed["Failure Count"]) == 0, placed


def test_node_prints_its_url_on_the_port_asked(node_binary, tmp_path):
    port = free_port()
    out, err = tmp_path / "node.out", tmp_path / "node.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        node = wattchain(
            "node", "--data", str(tmp_path / "chain"), "--rpc-port", str(port),
            env={"WATTCHAIN_NODE": str(node_binary)}, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    try:
        wait_for(lambda: "rpc:" in out.read_text() or node.poll() is not None, 120, "ready")
        assert out.read_text() == f"rpc: ws://127.0.0.1:{port}\n", err.read_text()
        chain = Chain(f"ws://127.0.0.1:{port}").connect(timeout_s=30)
        assert chain.best_number() >= 0
        chain.close()
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
