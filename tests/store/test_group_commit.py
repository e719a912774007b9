"""Appends from many threads commit together (store/db.py, GroupCommit): each thread gets its
own answer once its entry is durable, an id taken twice in one group is "same" or "conflict" as
when sent one after the other, and a failed commit fails every append of its group."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from market import OrderSpec, now_ms
from store import DataDir, ThreadConnection
from store.db import CommitFailed, GroupCommit, transaction
from store.orderlog import OrderLog

OWNER = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
SIG = "0x" + "11" * 64


def spec(coid, **kw):
    base = dict(client_order_id=coid, interval=10, side="bid", quantity_wh=1000, price_ticks=80)
    return OrderSpec(**{**base, **kw})


class Commits:
    """A GroupCommit that counts its commits."""

    def __init__(self):
        self.commits = 0
        self.group = GroupCommit(commit_seconds=self._count)

    def _count(self, _seconds: float) -> None:
        self.commits += 1


def queued(group: GroupCommit) -> int:
    with group._cond:  # the test's view of the writes waiting for the next group
        return len(group._queue)


def hold_the_lead(group: GroupCommit, conn, release: threading.Event) -> threading.Thread:
    """A thread whose write commits alone and holds the lead until `release`: the writes sent
    meanwhile gather into the next group."""
    holding = threading.Event()

    def write(_c):
        holding.set()
        release.wait(10)

    thread = threading.Thread(target=group.run, args=(conn, write))
    thread.start()
    assert holding.wait(10)
    return thread


def wait_queued(group: GroupCommit, n: int) -> None:
    deadline = time.monotonic() + 10
    while queued(group) < n:
        assert time.monotonic() < deadline, f"{queued(group)} of {n} writes queued"
        time.sleep(0.001)


def _place_concurrently_then_die(path, n, answers):
    data, group = DataDir(path), GroupCommit()

    def place(i):
        # Each request thread with its own connection, all sharing the process's group commit.
        appended = OrderLog(ThreadConnection(data.orders), group).append_order(OWNER, spec(i), SIG)
        assert appended.outcome == "new" and appended.response["client_order_id"] == i
        answers[i] = appended.seq  # only once append_order returned: what the API acknowledges

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(place, range(n)))
    os.kill(os.getpid(), signal.SIGKILL)


def test_concurrent_appends_each_get_their_own_entry_durably(tmp_path):
    n = 200
    answers = multiprocessing.Array("q", [0] * n)
    p = multiprocessing.get_context("fork").Process(
        target=_place_concurrently_then_die, args=(tmp_path, n, answers)
    )
    p.start()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    log = OrderLog(DataDir(tmp_path).orders())
    assert 0 not in answers[:] and len(set(answers[:])) == n
    for i, seq in enumerate(answers[:]):
        row = log.order(OWNER, i)
        assert row["seq"] == seq and json.loads(row["response"])["log_seq"] == seq


def test_concurrent_appends_commit_in_groups(tmp_path):
    data, counted = DataDir(tmp_path), Commits()
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(
                lambda i: OrderLog(ThreadConnection(data.orders), counted.group).append_order(
                    OWNER, spec(i), SIG
                ),
                range(64),
            )
        )
    assert [a.outcome for a in answers] == ["new"] * 64
    assert counted.commits <= 64  # one per group (how many depends on the scheduler)
    other = sqlite3.connect(tmp_path / "orders.db")  # as another process sees the log
    assert other.execute("SELECT count(*) FROM orders").fetchone()[0] == 64


def test_writes_sent_while_a_group_commits_make_the_next_group(tmp_path):
    data, counted = DataDir(tmp_path), Commits()
    log = OrderLog(ThreadConnection(data.orders), counted.group)
    release = threading.Event()
    lead = hold_the_lead(counted.group, log.conn, release)
    # One after the other in the next group: the same order twice, another one under its id,
    # a cancel, a new order, and one whose last moment passed while it waited.
    sends = [
        lambda: log.append_order(OWNER, spec(1), SIG),
        lambda: log.append_order(OWNER, spec(1), "0x" + "22" * 64),  # re-signed: the same
        lambda: log.append_order(OWNER, spec(1, quantity_wh=5), SIG),
        lambda: log.append_cancel(OWNER, 1, SIG),
        lambda: log.append_order(OWNER, spec(2), SIG),
        lambda: log.append_order(OWNER, spec(3), SIG, not_after_ms=now_ms() + 50),
    ]
    with ThreadPoolExecutor(len(sends)) as pool:
        futures = []
        for i, send in enumerate(sends):
            futures.append(pool.submit(send))
            wait_queued(counted.group, i + 1)
        time.sleep(0.1)  # past the last one's deadline
        release.set()
        answers = [f.result(10) for f in futures]
    lead.join(10)
    # The lead's group wrote nothing (no commit timed: no page, no fsync), then all six together.
    assert counted.commits == 1
    assert [a.outcome for a in answers] == ["new", "same", "conflict", "new", "new", "late"]
    assert answers[1].response == answers[0].response == answers[2].response
    assert json.loads(log.order(OWNER, 1)["spec"])["quantity_wh"] == 1000  # the first one's
    assert log.cancel(OWNER, 1) is not None and log.order(OWNER, 3) is None
    assert log.counts() == {"pending": 2}


def test_a_batch_joins_the_group_of_the_single_appends_sent_with_it(tmp_path):
    # A batch (`together`) is one write of the next group, not a transaction of its own between
    # groups: it commits with the single appends that gathered meanwhile, its reads see its own
    # earlier appends on whichever thread leads, and one that fails keeps the others.
    data, counted = DataDir(tmp_path), Commits()

    def log():  # each request with its own log, as the API's dependency gives it
        return OrderLog(ThreadConnection(data.orders), counted.group)

    release = threading.Event()
    lead = hold_the_lead(counted.group, data.orders(), release)
    batch_log, failing_log = log(), log()

    def batch():
        first = batch_log.append_order(OWNER, spec(10), SIG)
        again = batch_log.append_order(OWNER, spec(10, quantity_wh=5), SIG)
        batch_log.append_order(OWNER, spec(11), SIG)
        return first.outcome, again.outcome, batch_log.unsettled_bid_cost(OWNER)

    def failing():
        failing_log.append_order(OWNER, spec(20), SIG)
        raise ValueError("bad batch")

    with ThreadPoolExecutor(4) as pool:
        single = pool.submit(lambda: log().append_order(OWNER, spec(1), SIG))
        wait_queued(counted.group, 1)
        batched = pool.submit(batch_log.together, batch)
        wait_queued(counted.group, 2)
        failed = pool.submit(failing_log.together, failing)
        wait_queued(counted.group, 3)
        release.set()
        assert single.result(10).outcome == "new"
        # The single append came first in the group, so the batch's reads count it too.
        assert batched.result(10) == ("new", "conflict", 3 * 80 * 1000)
        with pytest.raises(ValueError, match="bad batch"):
            failed.result(10)
    lead.join(10)
    # The lead wrote nothing (no commit timed), then the single order and both batches together.
    assert counted.commits == 1
    assert batch_log.counts() == {"pending": 3} and batch_log.order(OWNER, 20) is None
    with pytest.raises(RuntimeError, match="wait for itself"):
        counted.group.run(data.orders(), lambda c: counted.group.run(c, lambda _: None))


def test_a_failed_commit_fails_every_append_of_its_group(tmp_path):
    # One connection for every thread, with a foreign key checked at COMMIT, so that a write can
    # make the group's commit fail.
    conn = DataDir(tmp_path).orders()
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute(
        "CREATE TEMP TABLE child (parent INTEGER REFERENCES parent (id)"
        " DEFERRABLE INITIALLY DEFERRED)"
    )
    counted = Commits()
    log = OrderLog(conn, counted.group)
    release = threading.Event()
    lead = hold_the_lead(counted.group, conn, release)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(log.append_order, OWNER, spec(i), SIG) for i in range(3)]
        wait_queued(counted.group, 3)
        futures.append(
            pool.submit(
                counted.group.run, conn, lambda c: c.execute("INSERT INTO child VALUES (9)")
            )
        )
        wait_queued(counted.group, 4)
        release.set()
        for future in futures:
            with pytest.raises(CommitFailed, match="FOREIGN KEY"):
                future.result(10)
    lead.join(10)
    assert not conn.in_transaction
    assert log.counts() == {}  # nothing of the group is in the log
    assert log.append_order(OWNER, spec(1), SIG).outcome == "new"  # and the log goes on
    assert log.counts() == {"pending": 1}


def test_a_write_that_fails_fails_alone(tmp_path):
    counted = Commits()
    log = OrderLog(ThreadConnection(DataDir(tmp_path).orders), counted.group)
    release = threading.Event()
    lead = hold_the_lead(counted.group, log.conn, release)

    def half_then_fail(c):
        c.execute(
            "INSERT INTO cancels (owner, client_order_id, signature, received_ms, response)"
            " VALUES ('x', '1', '0x', 0, '{}')"
        )
        raise ValueError("bad write")

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(log.append_order, OWNER, spec(1), SIG)
        wait_queued(counted.group, 1)
        bad = pool.submit(counted.group.run, log.conn, half_then_fail)
        wait_queued(counted.group, 2)
        last = pool.submit(log.append_order, OWNER, spec(2), SIG)
        wait_queued(counted.group, 3)
        release.set()
        with pytest.raises(ValueError, match="bad write"):
            bad.result(10)
        assert first.result(10).outcome == last.result(10).outcome == "new"
    lead.join(10)
    assert log.counts() == {"pending": 2} and log.cancel("x", 1) is None


def _writers_lock_free(path) -> bool:
    """Whether another open file description could take the database's writers' lock now."""
    with open(f"{path}-writers", "ab") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def test_write_transactions_hold_the_writers_lock_and_release_it_however_they_end(tmp_path):
    """Writers of a database queue on its `-writers` file lock (store.db.Connection): held from
    before BEGIN IMMEDIATE to after COMMIT or ROLLBACK, by transactions and group commits."""
    data = DataDir(tmp_path)
    conn = data.orders()
    with transaction(conn):
        assert not _writers_lock_free(data.orders_path)
    assert _writers_lock_free(data.orders_path)
    with pytest.raises(RuntimeError), transaction(conn):
        assert not _writers_lock_free(data.orders_path)
        raise RuntimeError("a write that fails")
    assert _writers_lock_free(data.orders_path)
    seen = []
    log = OrderLog(conn, GroupCommit())
    log.append_order(OWNER, spec(1), SIG)
    log.commits.run(conn, lambda c: seen.append(_writers_lock_free(data.orders_path)))
    assert seen == [False] and _writers_lock_free(data.orders_path)
