"""The small `wattchain bench chain` that gates `.ci/run` (issue 9, item 7): a fresh node and
the workers as processes, 400 orders signed for one interval and relayed, then the interval
followed to its clearing (finalized) and settlement. The runs at 10,000 and 100,000 orders
are the benchmark (figures in the README)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.chain


def test_an_interval_of_orders_is_relayed_cleared_and_settled(node_binary, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "wattchain.cli", "bench", "chain", "--node-bin", str(node_binary)]
        + ["--orders", "400", "--json", "--data", str(tmp_path / "market")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-4_000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert (result["on_chain"], result["refused"]) == (400, {}), result
    assert result["cleared"] and not result["voided"] and result["matches"] > 0, result
    assert result["gate_to_final_blocks"] >= 1 and result["gate_to_final_ms"] > 0, result
    assert result["settled"] and result["settle_blocks"] >= 1, result
    # The weights come from the runtime. The book is read by pages, once a call, so a match
    # reads no order and an order no match names costs no more than its share of a page.
    assert result["match_weight_ns"] > result["book_order_weight_ns"] >= 0, result
    # Money moves once per account, so a trader costs more than a match between counted ones.
    assert result["trader_weight_ns"] > result["match_weight_ns"], result
    assert result["transfer_weight_ns"] > 0 and result["orders_on_chain_per_s"] > 0, result
    # Issue 9's target: a verified match costs at most two plain transfers.
    assert result["match_weight_ns"] <= 2 * result["transfer_weight_ns"], result
