"""`wattchain demo` as a user runs it: a node, the API, the workers, simulated sites and their
agents, one interval traded live; one JSON line per interval, exit 0, state left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from wattchain.node import REPO_ROOT


def test_demo_one_interval_json(node_binary, tmp_path):
    data = tmp_path / "demo"
    env = dict(os.environ, WATTCHAIN_NODE=str(node_binary))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wattchain.cli",
            "demo",
            "--intervals",
            "1",
            "--json",
            "--data",
            str(data),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    (result,) = lines
    assert {"interval", "orders", "volume_wh", "price", "block"} <= set(result)
    assert result["orders"] >= 2 and result["block"] > 0
    assert result["settlement"]["balanced"] and result["settlement"]["money_sum_units"] == 0
    assert re.fullmatch(r"\d\d:\d\d:\d\d–\d\d:\d\d:\d\d", result["clock"]), result["clock"]
    # A clean shutdown: parts stop in order, nothing complains, and the summary comes last.
    noise = [ln for ln in proc.stderr.splitlines() if re.search(r"WARNING|ERROR|Traceback", ln)]
    assert not noise, "\n".join(noise[:20])
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("[demo] 1 of 1 intervals settled") and str(data) in last, last
    for name in ("orders.db", "index.db", "ops.db", "chain", "logs"):
        assert (data / name).exists(), name
