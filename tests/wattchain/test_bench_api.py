"""The short `make loadtest` that gates `.ci/run` (issue 11, items 6 and 8): `wattchain bench api`
on a market of its own (real node, workers, an API of two processes, all supervised, Locust as
the load; half the orders from aggregators in batches of 10), a modest rate for about 40 s,
every acknowledged order followed to a finalized block. Meanwhile the API, the workers and the
node are each killed -9 once (`--kill`): each must come back, and nothing acknowledged may be
lost or placed twice. The node is back in seconds (it keeps its compiled runtime), within the
6 s before its gate up to which the API acknowledges an order. The API runs on CPU 0 and the
rest on the others (`--api-cpus 0`), parts that restart too, and the run says where the CPU
went, part by part. The 10-minute run at 1,000 orders/s is the benchmark (`make loadtest`;
figures in the README)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from wattchain.bench import BlockClock, Load, Pinning, held_rate, kill_plan, misses
from wattchain.cli import main

PARTS = ["api", "workers", "node"]


@pytest.mark.chain
def test_a_short_load_run_with_each_part_killed_loses_nothing(node_binary, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "wattchain.cli", "bench", "api", "--node-bin", str(node_binary)]
        + ["--rate", "40", "--ramp", "5", "--hold", "30", "--burst", "5"]
        + ["--batch-share", "0.5", "--batch-size", "10"]
        + ["--kill", ",".join(PARTS), "--api-cpus", "0", "--api-processes", "2"]
        + ["--min-orders-per-s", "15", "--max-lost", "0", "--max-duplicated", "0"]
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
    assert result["api_processes"] == 2, result
    others = sorted(os.sched_getaffinity(0) - {0})
    assert result["pinned"] == {"api": [0], "node": others, "workers": others}, result
    spent = result["cpu_ms_per_order"]
    assert set(spent) == {"api", "node", "workers", "locust"}, result
    assert all(ms > 0 for ms in spent.values()), result
    # No order can be in the block whose slot had begun when it was acknowledged.
    assert result["relay_lag_p99_blocks"] >= 1, result
    # Both kinds of request were sent, and an order's answer time is the slower kind's.
    kinds = result["by_request"]
    assert all(kinds[name]["requests"] > 0 for name in ("POST /orders", "POST /orders/batch"))
    assert result["p99_ms"] == max(kind["p99_ms"] for kind in kinds.values()), result
    # Each part was killed in turn during the hold and came back.
    assert [k["part"] for k in result["kills"]] == PARTS, result
    assert all(k["back_after_s"] is not None for k in result["kills"]), result
    assert all(result["restarts"][part] >= 1 for part in PARTS), result
    at = [k["at_s"] for k in result["kills"]]
    assert 5 < at[0] < at[1] < at[2] < 5 + 30, result


def test_the_kills_are_spread_over_the_hold_and_each_part_is_killed_once():
    load = Load(rate=10, ramp_s=20, hold_s=120, burst_s=5, burst=2)
    assert [(k.part, k.planned_s) for k in kill_plan(["api", "workers", "node"], load)] == [
        ("api", 50),
        ("workers", 80),
        ("node", 110),
    ]
    assert [k.planned_s for k in kill_plan(["node"], load)] == [80]
    for bad in (["api", "api"], ["meter"]):
        with pytest.raises(ValueError, match="at most once"):
            kill_plan(bad, load)


def test_the_rate_held_is_counted_over_the_hold_alone():
    load = Load(rate=10, ramp_s=2, hold_s=3, burst_s=1, burst=2)
    start = 17_966_789_000  # tenths of a unix second: the load's first answer
    # 5 a second during the ramp, 10 during the hold (one tenth with a refusal), 20 after.
    timeline = {str(start + t): {"202": 1} for t in range(0, 20, 2)}
    timeline |= {str(start + t): {"202": 1} for t in range(20, 50)}
    timeline[str(start + 30)] = {"202": 1, "503 RelayBacklog": 3}
    timeline |= {str(start + t): {"202": 2} for t in range(50, 60)}
    assert held_rate(timeline, load) == 10.0
    # A run that ended before its hold did has no held rate.
    assert held_rate({k: v for k, v in timeline.items() if int(k) < start + 40}, load) is None
    assert held_rate({}, load) is None


def test_the_orders_per_s_threshold_is_the_rate_held():
    result = {"held_orders_per_s": 990.0, "orders_per_s": 1_020.0, "p99_ms": 100}
    assert misses(result, {"min_orders_per_s": 1_000}) == ["held_orders_per_s 990.0 < 1000"]
    assert misses({**result, "held_orders_per_s": None}, {"min_orders_per_s": 1_000}) == [
        "held_orders_per_s None < 1000"
    ]


def test_a_part_that_did_not_come_back_fails_the_run():
    result = {
        "held_orders_per_s": 40,
        "orders_per_s": 40,
        "p99_ms": 100,
        "lost": 0,
        "failures": 0,
        "duplicated": 0,
        "relay_lag_p99_s": 3,
        "kills": [
            {"part": "api", "at_s": 12.0, "back_after_s": 2.5},
            {"part": "node", "at_s": 30.0, "back_after_s": None},
            {"part": "workers", "at_s": None, "back_after_s": None},
        ],
    }
    assert misses(result, {"max_lost": 0}) == [
        "node, killed at 30.0 s, was not back within 120 s",
        "workers was never killed (the run ended first)",
    ]


def test_relay_lag_counts_blocks_from_the_one_under_way_at_the_acknowledgement():
    index = sqlite3.connect(":memory:")
    index.execute("CREATE TABLE blocks (number INTEGER PRIMARY KEY, hash TEXT, timestamp_ms INT)")
    # Genesis has no timestamp; blocks 1-3 began at 1,000, 3,000 and 5,000 ms.
    index.executemany(
        "INSERT INTO blocks VALUES (?, '', ?)", [(0, 0), (1, 1_000), (2, 3_000), (3, 5_000)]
    )
    clock = BlockClock(index)
    assert clock.lag(3_500, 3) == 1  # acknowledged during block 2's slot, in the next block
    assert clock.lag(3_000, 4) == 2  # block 2's slot had just begun: one block missed
    assert clock.lag(2_999, 2) == 1
    assert clock.lag(500, 1) == 1  # before the first block: counted from genesis


def test_the_api_cpus_are_some_of_the_machines_not_all(capsys):
    with pytest.raises(RuntimeError, match="not all of them"):
        Pinning(set(os.sched_getaffinity(0)))
    with pytest.raises(RuntimeError, match="not all of them"):
        Pinning({max(os.sched_getaffinity(0)) + 1})
    with pytest.raises(SystemExit):
        main(["bench", "api", "--api-cpus", "0-x"])
    assert "'0-x' is not a CPU list" in capsys.readouterr().err


PACED = """
import time
from types import SimpleNamespace
from load_tests import intake

clock = [100.0]
time.monotonic = lambda: clock[0]
wait, user = intake.paced(10), SimpleNamespace()
waits = []
for now in (100.0, 100.1, 100.55, 100.56, 100.57, 100.58, 110.0, 110.0):
    clock[0] = now
    waits.append(round(wait(user), 3))
print(waits)
"""


def test_a_user_makes_up_for_a_slow_answer_on_its_schedule():
    """The load offers its rate even while answers are slow: a user 10 orders/s sends at once
    after a 450 ms answer until it is back on schedule; a user far behind starts again."""
    run = subprocess.run(
        [sys.executable, "-c", PACED], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "[0.1, 0.1, 0.0, 0.0, 0.0, 0.02, 0.0, 0.1]"
