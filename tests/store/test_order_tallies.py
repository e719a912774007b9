"""The order log's tallies (store/schema.py, ORDER_TALLIES) give exactly what the scans they
replace gave, through every relay state of orders and cancels, and a log older than the tallies
gets them filled when it is opened."""

from __future__ import annotations

import json
import random

from market import OrderSpec
from store import DataDir, transaction
from store.orderlog import ONCHAIN, PENDING, REJECTED, SUBMITTED, OrderLog

OWNERS = ["5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY", "5FHneW46xGXgs5mUiveU4sbTy"]
SIG = "0x" + "11" * 64
INTERVALS = (10, 11)


# -- the scans the tallies replace, as they were: the reference -----------------------------------
def reference_unsettled_bid_cost(conn, owner: str) -> int:
    total = 0
    for row in conn.execute(
        "SELECT spec FROM orders WHERE owner = ? AND side = 'bid' AND status IN (?, ?)",
        (owner, PENDING, SUBMITTED),
    ):
        spec = json.loads(row["spec"])
        total += spec["price_ticks"] * spec["quantity_wh"]
    return total


def reference_interval_count(conn, interval: int) -> int:
    return conn.execute(
        "SELECT count(*) FROM orders WHERE interval = ? AND status != ?", (interval, REJECTED)
    ).fetchone()[0]


def reference_open_unindexed(conn, owner, interval, indexed_block):
    cancel = (
        "EXISTS (SELECT 1 FROM cancels c WHERE c.owner = o.owner"
        " AND c.client_order_id = o.client_order_id AND c.status {})"
    )
    rows = conn.execute(
        f"SELECT o.side, sum(NOT {cancel.format('!= ?')}), sum(NOT {cancel.format('= ?')})"
        " FROM orders o WHERE o.owner = ? AND o.interval = ?"
        " AND (o.status IN (?, ?)"
        "      OR (o.status = ? AND (o.block_number IS NULL OR o.block_number > ?)))"
        " GROUP BY o.side",
        (
            REJECTED,
            ONCHAIN,
            owner,
            interval,
            PENDING,
            SUBMITTED,
            ONCHAIN,
            -1 if indexed_block is None else indexed_block,
        ),
    ).fetchall()
    return {side: (held, on_chain) for side, held, on_chain in rows}


def assert_tallies_match(log: OrderLog) -> None:
    blocks = [None, 0, 1, 2, 3, 4, 5, 6]
    for owner in OWNERS:
        assert log.unsettled_bid_cost(owner) == reference_unsettled_bid_cost(log.conn, owner)
        for interval in INTERVALS:
            for block in blocks:
                fast = log.open_unindexed(owner, interval, block)
                assert fast == reference_open_unindexed(log.conn, owner, interval, block), (
                    owner,
                    interval,
                    block,
                )
    for interval in (*INTERVALS, 99):
        assert log.interval_count(interval) == reference_interval_count(log.conn, interval)


def random_history(
    log: OrderLog, rng: random.Random, steps: int, *, check=None, relay=True
) -> None:
    """Orders and cancels appended and, with `relay`, taken through random relay transitions,
    as the API and the relayer make them (on chain in blocks 1-5, or in no known block)."""
    ids = log.conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    for _ in range(steps):
        action = rng.random() if relay else rng.random() / 2
        owner = rng.choice(OWNERS)
        if action < 0.35 or ids == 0:
            ids += 1
            spec = OrderSpec(
                client_order_id=ids,
                interval=rng.choice(INTERVALS),
                side=rng.choice(("bid", "offer")),
                quantity_wh=rng.randint(1, 5_000),
                price_ticks=rng.randint(1, 500),
            )
            log.append_order(owner, spec, SIG)
        elif action < 0.5:  # a cancel, of a logged order or of one placed elsewhere
            log.append_cancel(owner, rng.randint(1, ids + 2), SIG)
        else:
            table = rng.choice(("orders", "cancels"))
            (seq,) = rng.choice(log.conn.execute(f"SELECT seq FROM {table}").fetchall() or [(0,)])
            if seq == 0:
                continue
            move = rng.choice(("submit", "onchain", "reject", "back"))
            if move == "submit":
                log.mark_submitted(table, [seq], "0xabc")
            elif move == "onchain":
                block = rng.choice((1, 2, 3, 4, 5, None))
                log.mark_onchain(table, [(seq, seq)], None if block is None else "0xb", block)
            elif move == "reject":
                log.mark_rejected(table, seq, "Refused")
            else:
                log.back_to_pending(table, [seq], solo=rng.random() < 0.5)
        if check is not None:
            check(log)


def test_tallies_match_the_scans_they_replace(tmp_path):
    log = OrderLog(DataDir(tmp_path).orders())
    random_history(log, random.Random(7), 400, check=assert_tallies_match)
    statuses = {r[0] for r in log.conn.execute("SELECT status FROM orders")}
    cancels = {r[0] for r in log.conn.execute("SELECT status FROM cancels")}
    assert statuses == cancels == {PENDING, SUBMITTED, ONCHAIN, REJECTED}  # every state met
    assert log.conn.execute(
        "SELECT 1 FROM orders WHERE block_number IS NULL AND status = ?", (ONCHAIN,)
    ).fetchone()


def test_tallies_in_a_group_commit_and_after_a_rollback(tmp_path):
    log = OrderLog(DataDir(tmp_path).orders())
    random_history(log, random.Random(3), 60)

    def batch():
        random_history(log, random.Random(4), 30, relay=False)
        assert_tallies_match(log)  # read inside the group: its own appends counted

    log.together(batch)
    try:
        with transaction(log.conn):
            log.conn.execute("UPDATE orders SET status = ?", (REJECTED,))
            raise RuntimeError("undone")
    except RuntimeError:
        pass
    assert_tallies_match(log)


def test_a_log_older_than_its_tallies_gets_them_when_opened(tmp_path):
    data = DataDir(tmp_path)
    log = OrderLog(data.orders())
    random_history(log, random.Random(11), 200)
    # What a log written before the tallies looks like: no triggers, no tallies.
    with transaction(log.conn) as c:
        for (trigger,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            c.execute(f"DROP TRIGGER {trigger}")
        for table in ("interval_orders", "bids_awaiting_relay", "unindexed_orders"):
            c.execute(f"DROP TABLE {table}")
    data.close()

    reopened = OrderLog(DataDir(tmp_path).orders())
    assert_tallies_match(reopened)
    random_history(reopened, random.Random(12), 100, check=assert_tallies_match)
    # Filled once: opening it again changes nothing.
    before = reopened.conn.execute("SELECT * FROM unindexed_orders").fetchall()
    again = OrderLog(DataDir(tmp_path).orders())
    assert [tuple(r) for r in again.conn.execute("SELECT * FROM unindexed_orders")] == [
        tuple(r) for r in before
    ]
    assert_tallies_match(again)
