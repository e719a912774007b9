"""The short `make loadtest` that gates `.ci/run` (issue 11, item 8): `wattchain bench api` on
a market of its own (real node, workers, API as processes, Locust as the load), a modest rate
for about 40 s, every acknowledged order followed to the chain. It must lose, duplicate and
fail nothing, and keep most of its rate on a machine busy with other tests. The 10-minute
run at 1,000 orders/s is the benchmark (`make loadtest`; figures in the README)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.chain


def test_a_short_load_run_loses_nothing(node_binary, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "wattchain.cli", "bench", "api", "--node-bin", str(node_binary)]
        + ["--rate", "40", "--ramp", "5", "--hold", "20", "--burst", "5"]
        + ["--min-orders-per-s", "20", "--max-lost", "0", "--max-duplicated", "0"]
        + ["--max-failures", "0", "--data", str(tmp_path / "market")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-4_000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["acknowledged"] > 0 and result["on_chain"] == result["acknowledged"], result
    assert (result["lost"], result["duplicated"], result["failures"]) == (0, 0, 0), result
    assert result["p99_ms"] is not None and result["cpu_api_pct"] > 0, result
