"""The read-side queries (store/queries.py) against a small index.db and ops.db: book order and
its continuation, newest-first listings below a bound, participants' sums, the index's own
bookkeeping, and the operator's clearing attempts and alerts."""

from __future__ import annotations

import json
import sqlite3

import pytest

from store import INDEX_SCHEMA, OPS_SCHEMA, DataDir, connect, queries, transaction

ANN, BEN = "ann", "ben"


@pytest.fixture
def index(tmp_path):
    conn = connect(tmp_path / "index.db", INDEX_SCHEMA, synchronous="NORMAL")
    with transaction(conn) as c:
        # (order_id, owner, interval, side, quantity_wh, price_ticks, zone, status)
        for order in [
            (1, ANN, 7, "bid", 100, 50, 0, "open"),
            (2, BEN, 7, "bid", 200, 60, 1, "open"),
            (3, ANN, 7, "offer", 300, 40, 0, "open"),
            (4, BEN, 7, "offer", 400, 45, 1, "cancelled"),
            (5, ANN, 7, "bid", 50, 60, 0, "open"),
            (6, BEN, 7, "offer", 10, 40, 1, "open"),
            (7, ANN, 8, "bid", 70, 55, 0, "open"),
        ]:
            c.execute(
                "INSERT INTO orders (order_id, owner, client_order_id, interval, side,"
                " quantity_wh, price_ticks, zone, status, placed_block)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (order[0], order[1], str(order[0]), *order[2:]),
            )
        for interval in (5, 6, 7):
            c.execute(
                "INSERT INTO clearings (interval, mechanism, volume_wh, matches, zone_prices,"
                " grid_fees_paid, block_number, block_hash) VALUES (?, 'uniform', 1, 1, ?, '0',"
                " ?, ?)",
                (interval, json.dumps([{"zone": 0, "price": 50}]), interval, f"0x{interval}"),
            )
        for interval, buyer, seller, q in [(6, ANN, BEN, 10), (7, BEN, ANN, 3), (7, ANN, BEN, 5)]:
            c.execute(
                "INSERT INTO trades (interval, bid, offer, buyer, seller, quantity_wh,"
                " buyer_price, seller_price, block_number, block_hash)"
                " VALUES (?, 1, 2, ?, ?, ?, 60, 50, 1, '0x')",
                (interval, buyer, seller, q),
            )
        for interval in (5, 6):
            c.execute(
                "INSERT INTO settlements VALUES (?, ?, 10, 12, 2, '-40', 1, '0x', ?, 0, '0')",
                (interval, ANN, int(interval == 6)),
            )
        c.execute("INSERT INTO intervals_settled VALUES (6, 2, 0, 0, 9, '0x9', 0, NULL, 1, 0)")
        c.execute("INSERT INTO roles VALUES ('distributor', 'dso', 1)")
        c.execute("INSERT INTO meta VALUES ('last_block', '42')")
        for meter, owner, revoked in [("0xa", ANN, 0), ("0xb", BEN, 0), ("0xc", ANN, 1)]:
            c.execute("INSERT INTO meters VALUES (?, ?, 0, 'solar', 1, ?)", (meter, owner, revoked))
        for counter in range(4):
            c.execute(
                "INSERT INTO readings VALUES ('0xa', ?, ?, ?, 'reading', 1, 0, 1, '0x')",
                (counter, counter + 5, ANN),
            )
        for seq, name in enumerate(["OrderPlaced", "ClearingAccepted", "OrderPlaced"], 1):
            c.execute(
                "INSERT INTO events (seq, block_number, block_hash, event_index, name, data)"
                " VALUES (?, ?, '0x', 0, ?, '{}')",
                (seq, seq, name),
            )
    yield conn
    conn.close()


@pytest.fixture
def ops(tmp_path):
    conn = connect(tmp_path / "ops.db", OPS_SCHEMA)
    with transaction(conn) as c:
        for interval, state, error in [
            (7, "committed", None),
            (7, "rejected", "late"),
            (8, "rejected", "BadClearing"),
        ]:
            c.execute(
                "INSERT INTO clearing_attempts (interval, state, error, block_hash,"
                " commit_latency_ms, created_ms, updated_ms) VALUES (?, ?, ?, '0xh', 12, 0, 0)",
                (interval, state, error),
            )
        for n in range(5):
            c.execute(
                "INSERT INTO alerts (at_ms, source, name, detail) VALUES (?, 'test', 'x', '')",
                (n,),
            )
    yield conn
    conn.close()


def test_book_orders_bids_best_first_then_offers_and_continue_after_a_position(index):
    rows = queries.book_orders(index, 7, limit=10)
    assert [r["order_id"] for r in rows] == [2, 5, 1, 3, 6]  # order 4 is cancelled
    for cut in range(1, len(rows)):
        after = queries.book_position(rows[cut - 1])
        rest = queries.book_orders(index, 7, after=after, limit=10)
        assert [r["order_id"] for r in rest] == [r["order_id"] for r in rows[cut:]]
    assert [r["order_id"] for r in queries.book_orders(index, 7, zone=1, limit=10)] == [2, 6]
    assert [r["order_id"] for r in queries.book_orders(index, 7, side="offer", limit=1)] == [3]


def test_book_levels_best_first_without_cancelled(index):
    bids = [tuple(r) for r in queries.book_levels(index, 7, None, "bid")]
    assert bids == [(60, 250, 2), (50, 100, 1)]
    assert [tuple(r) for r in queries.book_levels(index, 7, 1, "offer")] == [(40, 10, 1)]


def test_clearings_and_settlement_state(index):
    assert queries.is_cleared(index, 7) and not queries.is_cleared(index, 8)
    assert queries.clearing(index, 8) is None and queries.clearing(index, 6)["volume_wh"] == 1
    assert [r["interval"] for r in queries.clearings(index, limit=2)] == [7, 6]
    assert [r["interval"] for r in queries.clearings(index, before=6, limit=5)] == [5]
    assert [r["quantity_wh"] for r in queries.clearing_trades(index, 7)] == [3, 5]
    assert queries.is_settled(index, 6) and not queries.is_settled(index, 7)


def test_participant_listings(index):
    assert queries.participant_meters(index, ANN) == ["0xa"]  # 0xc is revoked
    assert [r["order_id"] for r in queries.participant_orders(index, ANN, limit=9)] == [7, 5, 3, 1]
    assert [
        r["order_id"] for r in queries.participant_orders(index, ANN, interval=7, before=5, limit=9)
    ] == [3, 1]
    assert [dict(r) for r in queries.positions(index, ANN, limit=9)] == [
        {"interval": 7, "bought": 5, "sold": 3, "paid": 300, "received": 150},
        {"interval": 6, "bought": 10, "sold": 0, "paid": 600, "received": 0},
    ]
    assert [r["interval"] for r in queries.positions(index, ANN, before=7, limit=9)] == [6]
    assert [r["interval"] for r in queries.settlement_lines(index, ANN, limit=1)] == [6]
    assert queries.settlement_lines(index, BEN, limit=9) == []
    # Interval 6 is settled; Ann sold 3 Wh at 50 in interval 7, which is not.
    assert queries.proceeds_awaiting_settlement(index, ANN) == 3 * 50
    assert queries.proceeds_awaiting_settlement(index, BEN) == 5 * 50


def test_meters_and_readings(index):
    assert [r["meter"] for r in queries.meters(index, limit=9)] == ["0xa", "0xb", "0xc"]
    assert [r["meter"] for r in queries.meters(index, owner=ANN, after="0xa", limit=9)] == ["0xc"]
    assert queries.meter_accredited(index, "0xc") and not queries.meter_accredited(index, "0xd")
    counters = [r["counter"] for r in queries.meter_readings(index, "0xa", before=3, limit=2)]
    assert counters == [2, 1]


def test_the_index_itself(index, tmp_path):
    assert queries.last_indexed_block(index) == 42
    assert queries.distributor(index) == "dso"
    assert queries.last_event_seq(index) == 3
    assert [r["seq"] for r in queries.events_after(index, 0, ["ClearingAccepted"], 10)] == [2]
    assert [r["seq"] for r in queries.events_after(index, 1, ["OrderPlaced"], 10)] == [3]
    empty = connect(tmp_path / "empty.db", INDEX_SCHEMA)
    assert queries.last_indexed_block(empty) is None and queries.distributor(empty) is None
    assert queries.last_event_seq(empty) == 0


def test_report_falls_back_to_the_distributor_role(index):
    report = queries.report_from_index(index, 0, 10)
    assert {p["account"] for p in report["parties"]} >= {ANN, BEN, "dso"}
    # Interval 6 is the only settled one; Ann's line there is an estimate.
    ann = next(p for p in report["parties"] if p["account"] == ANN)
    assert ann["estimated_lines"] == 1 and ann["trued_up_wh"] == 0


def test_an_index_from_before_estimates_gains_their_columns(tmp_path):
    old = sqlite3.connect(tmp_path / "index.db")
    old.execute(
        "CREATE TABLE settlements (interval INTEGER NOT NULL, account TEXT NOT NULL,"
        " contracted_wh INTEGER NOT NULL, metered_wh INTEGER NOT NULL, imbalance_wh INTEGER NOT"
        " NULL, amount TEXT NOT NULL, block_number INTEGER NOT NULL, block_hash TEXT NOT NULL,"
        " PRIMARY KEY (interval, account))"
    )
    old.execute("INSERT INTO settlements VALUES (1, 'a', 0, 0, 0, '0', 1, '0x')")
    old.commit()
    old.close()
    conn = DataDir(tmp_path).index()
    row = conn.execute("SELECT estimated, trued_up_wh, proceeds FROM settlements").fetchone()
    assert (row["estimated"], row["trued_up_wh"], row["proceeds"]) == (0, 0, "0")


def test_clearing_attempts_and_alerts(ops):
    assert dict(queries.latest_clearing_attempt(ops, 8)) == {
        "state": "rejected",
        "error": "BadClearing",
    }
    assert queries.latest_clearing_attempt(ops, 9) is None
    assert dict(queries.committed_clearing_attempt(ops, 7)) == {
        "block_hash": "0xh",
        "extrinsic_index": None,
        "commit_latency_ms": 12,
    }
    assert queries.committed_clearing_attempt(ops, 8) is None
    assert [r["at_ms"] for r in queries.alerts(ops, limit=2)] == [4, 3]
    assert [r["at_ms"] for r in queries.alerts(ops, before=2, limit=9)] == [0]
