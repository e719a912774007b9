"""The write-ahead order log: durable appends, idempotency by (owner, client_order_id), and the
relayer's state transitions."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import pytest

from market import OrderSpec, now_ms
from store import DataDir
from store.orderlog import OrderLog

OWNER = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
BOB = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
SIG = "0x" + "11" * 64


def spec(coid=1, **kw):
    base = dict(client_order_id=coid, interval=10, side="bid", quantity_wh=1000, price_ticks=80)
    return OrderSpec(**{**base, **kw})


def test_log_is_durable_wal_full(tmp_path):
    conn = DataDir(tmp_path).orders()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync on every commit


def test_commits_leave_the_write_ahead_log_to_the_checkpoints_thread(tmp_path):
    """An order's commit never copies the WAL into the database, which SQLite does inside the
    commit that takes it past 1,000 pages (160-210 ms under load, every order waiting): the
    processes that write the log run `Checkpoints` beside it."""
    data = DataDir(tmp_path)
    log = OrderLog(data.orders())
    before = os.path.getsize(data.orders_path)
    for i in range(1_500):  # a few pages each: well past 1,000 pages of WAL
        log.append_order(OWNER, spec(i), SIG)
    assert os.path.getsize(f"{data.orders_path}-wal") > 1_000 * 4096
    assert os.path.getsize(data.orders_path) == before  # every commit left it to the WAL
    checkpoints = data.orders_checkpoints()
    try:
        deadline = time.monotonic() + 10
        while os.path.getsize(data.orders_path) == before and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        checkpoints.stop()
    assert os.path.getsize(data.orders_path) > before


def test_same_order_same_answer_different_order_conflict(tmp_path):
    log = OrderLog(DataDir(tmp_path).orders())
    first = log.append_order(OWNER, spec(), SIG)
    assert first.outcome == "new" and first.response["status"] == "accepted"
    again = log.append_order(OWNER, spec(), "0x" + "22" * 64)  # re-signed: same order
    assert again.outcome == "same" and again.response == first.response
    other = log.append_order(OWNER, spec(quantity_wh=999), SIG)
    assert other.outcome == "conflict"
    assert log.append_order(BOB, spec(), SIG).outcome == "new"  # ids are per owner
    assert log.counts() == {"pending": 2}


def test_an_entry_past_its_deadline_is_not_logged_but_a_resend_still_answers(tmp_path):
    log = OrderLog(DataDir(tmp_path).orders())
    first = log.append_order(OWNER, spec(), SIG)
    past = 1  # unix ms: long gone
    assert log.append_order(OWNER, spec(), SIG, not_after_ms=past).response == first.response
    assert log.append_order(OWNER, spec(2), SIG, not_after_ms=past).outcome == "late"
    assert log.append_cancel(OWNER, 1, SIG, not_after_ms=past).outcome == "late"
    assert log.order(OWNER, 2) is None and log.cancel(OWNER, 1) is None
    assert log.append_order(OWNER, spec(2), SIG, not_after_ms=2**62).outcome == "new"


def test_u64_client_order_ids(tmp_path):
    log = OrderLog(DataDir(tmp_path).orders())
    big = 2**64 - 1
    log.append_order(OWNER, spec(big), SIG)
    row = log.order(OWNER, big)
    assert json.loads(row["spec"])["client_order_id"] == big


def test_relay_state_transitions(tmp_path):
    log = OrderLog(DataDir(tmp_path).orders())
    seqs = [log.append_order(OWNER, spec(i), SIG).seq for i in range(5)]
    pending = log.pending_orders(3)
    assert [o.seq for o in pending] == seqs[:3]
    assert [o.seq for o in log.pending_orders(10, exclude={seqs[0]})] == seqs[1:]
    log.mark_submitted("orders", seqs[:3], "0xabc")
    assert [r["seq"] for r in log.submitted("orders")] == seqs[:3]
    log.mark_onchain("orders", [(seqs[0], 100), (seqs[1], 101)], "0xblock", 7)
    log.back_to_pending("orders", [seqs[2]], solo=True, error="NotEquilibrium")
    log.mark_rejected("orders", seqs[3], "GateClosed")
    row = log.order(OWNER, 0)
    assert (row["status"], row["order_id"], row["block_number"]) == ("onchain", 100, 7)
    assert log.order(OWNER, 1)["order_id"] == 101  # each entry its own chain order id
    again = {o.seq: o for o in log.pending_orders(10)}
    assert again[seqs[2]].attempts == 1 and again[seqs[4]].attempts == 0
    assert log.order(OWNER, 3)["error"] == "GateClosed"
    # Bids not yet on chain still count against the owner's funds.
    assert log.unsettled_bid_cost(OWNER) == 2 * 80 * 1000


def test_cancels_wait_for_their_order(tmp_path):
    log = OrderLog(DataDir(tmp_path).orders())
    seq = log.append_order(OWNER, spec(1), SIG).seq
    log.append_cancel(OWNER, 1, SIG)
    log.append_cancel(OWNER, 99, SIG)  # an order placed elsewhere: nothing to wait for
    assert [c.client_order_id for c in log.pending_cancels(10)] == [99]
    log.mark_onchain("orders", [(seq, 5)], None, None)
    assert sorted(c.client_order_id for c in log.pending_cancels(10)) == [1, 99]
    assert log.append_cancel(OWNER, 1, "0x" + "33" * 64).outcome == "same"


def _append_then_die(path, n, ready):
    log = OrderLog(DataDir(path).orders())
    for i in range(n):
        log.append_order(OWNER, spec(i), SIG)
        ready.value = i + 1  # only after the commit returned: what the API acknowledges
    os.kill(os.getpid(), signal.SIGKILL)


def test_acknowledged_appends_survive_a_kill(tmp_path):
    ready = multiprocessing.Value("i", 0)
    p = multiprocessing.get_context("fork").Process(
        target=_append_then_die, args=(tmp_path, 50, ready)
    )
    p.start()
    p.join(30)
    assert p.exitcode == -signal.SIGKILL
    log = OrderLog(DataDir(tmp_path).orders())
    assert log.counts().get("pending") == ready.value == 50


def _group_then_die(path, n, ready):
    log = OrderLog(DataDir(path).orders())
    log.together(lambda: [log.append_order(OWNER, spec(i), SIG) for i in range(n)])
    ready.value = n  # only after the group's one commit returned: what a batch acknowledges
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_group_commits_its_appends_together(tmp_path):
    log = OrderLog(DataDir(tmp_path).orders())
    other = OrderLog(DataDir(tmp_path).orders())  # another connection, as another process

    def batch():
        assert log.append_order(OWNER, spec(1), SIG).outcome == "new"
        assert log.append_order(OWNER, spec(1), SIG).outcome == "same"  # seen within the group
        assert log.append_order(OWNER, spec(1, quantity_wh=5), SIG).outcome == "conflict"
        assert log.append_order(OWNER, spec(2), SIG).outcome == "new"
        assert log.unsettled_bid_cost(OWNER) == 2 * 80 * 1000
        assert other.counts() == {}  # nothing durable, nothing visible, before the commit
        return "done"

    assert log.together(batch) == "done"
    assert other.counts() == {"pending": 2}

    def fails():
        log.append_order(OWNER, spec(3), SIG)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        log.together(fails)
    assert log.order(OWNER, 3) is None and log.counts() == {"pending": 2}  # all or nothing
    with pytest.raises(RuntimeError, match="does not nest"):
        log.together(lambda: log.together(lambda: None))

    ready = multiprocessing.Value("i", 0)
    p = multiprocessing.get_context("fork").Process(
        target=_group_then_die, args=(tmp_path / "killed", 30, ready)
    )
    p.start()
    p.join(30)
    assert p.exitcode == -signal.SIGKILL
    assert OrderLog(DataDir(tmp_path / "killed").orders()).counts() == {"pending": ready.value}
    assert ready.value == 30


def test_landed_counts_what_reached_the_chain_by_block_not_what_was_refused(tmp_path):
    log = OrderLog(DataDir(tmp_path).orders())
    seqs = [log.append_order(OWNER, spec(i), SIG).seq for i in range(1, 9)]
    cancel = log.append_cancel(OWNER, 1, SIG).seq
    before = log.unrelayed()
    assert before == (9, seqs[0], cancel)
    since = 0  # unix ms: every landing
    log.mark_onchain("orders", [(seqs[0], 1), (seqs[1], 2)], "0xb5", 5)
    log.mark_rejected("orders", seqs[2], "GateClosed")  # dropped late: left the log, not landed
    log.mark_rejected("orders", seqs[3], "IntervalFull")  # refused by the chain
    log.mark_onchain("orders", [(seqs[4], 3)], "0xb6", 6)
    log.mark_onchain("cancels", [(cancel, None)], "0xb6", 6)
    landed = log.landed(since, before.order_from, before.cancel_from)
    assert [(x.block, x.entries) for x in landed] == [(5, 2), (6, 2)]
    assert landed[0].at_ms <= landed[1].at_ms
    # What waits now, and where a later landing is looked for: the lowest order still waiting,
    # and for the cancels (none waiting) the next seq.
    assert log.unrelayed() == (3, seqs[5], cancel + 1)
    # Bounded by the seqs given: entries below them are not read.
    assert log.landed(since, seqs[2], cancel + 1) == [landed[1]._replace(entries=1)]
    # And by time: nothing landed after now.
    assert log.landed(now_ms(), before.order_from, before.cancel_from) == []
