"""Read-side queries, named in the market's words: of the index (index.db) for the API's routes,
the server-sent events, the clearing house's report and the demo; of the operator's record
(ops.db) for clearing attempts and alerts. The workers in offchain/ do the writing."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from market import now_ms
from market.clearinghouse import SettlementLine, Trade, build_report

# Above every interval, order id, alert id and reading counter: a newest-first listing whose
# `before` is this starts at its newest row.
ABOVE_ALL = 2**62

# -- the order book ---------------------------------------------------------------------------

# Bids best (highest price) first, then offers best (lowest price) first, then by order id.
_BOOK_SORT = (
    "(CASE side WHEN 'bid' THEN 0 ELSE 1 END),"
    " (CASE side WHEN 'bid' THEN -price_ticks ELSE price_ticks END), order_id"
)
_SIDE_RANK = {"bid": 0, "offer": 1}


def book_position(order: sqlite3.Row) -> list[int]:
    """Where an order row stands in the book's order (`_BOOK_SORT` in Python): what
    `book_orders(after=...)` continues after."""
    price = order["price_ticks"]
    return [
        _SIDE_RANK[order["side"]],
        -price if order["side"] == "bid" else price,
        order["order_id"],
    ]


def book_orders(
    conn: sqlite3.Connection,
    interval: int,
    *,
    zone: int | None = None,
    side: str | None = None,
    after: Sequence[Any] | None = None,
    limit: int,
) -> list[sqlite3.Row]:
    """The interval's orders not cancelled (all of `orders`' columns), in book order: bids best
    first, then offers best first. Only one zone or side if given; with `after` (a
    `book_position`), only those after it. At most `limit` rows."""
    where = ["interval = ?", "status != 'cancelled'"]
    args: list[Any] = [interval]
    if zone is not None:
        where.append("zone = ?")
        args.append(zone)
    if side is not None:
        where.append("side = ?")
        args.append(side)
    if after:
        where.append(f"({_BOOK_SORT}) > (?, ?, ?)")
        args += after
    return conn.execute(
        f"SELECT * FROM orders WHERE {' AND '.join(where)} ORDER BY {_BOOK_SORT} LIMIT ?",
        (*args, limit),
    ).fetchall()


def book_levels(
    conn: sqlite3.Connection, interval: int, zone: int | None, side: str
) -> list[sqlite3.Row]:
    """One side of the interval's book as price levels, best first (bids from the highest
    price, offers from the lowest), over one zone or all: `price_ticks`, the quantity not
    cancelled at that price `q` (Wh) and the number of orders `n`."""
    order = "DESC" if side == "bid" else "ASC"
    sql = (
        "SELECT price_ticks, SUM(quantity_wh) AS q, COUNT(*) AS n FROM orders"
        " WHERE interval = ? AND side = ? AND status != 'cancelled'"
        + (" AND zone = ?" if zone is not None else "")
        + f" GROUP BY price_ticks ORDER BY price_ticks {order}"
    )
    args = (interval, side) + ((zone,) if zone is not None else ())
    return conn.execute(sql, args).fetchall()


def order_on_chain(
    conn: sqlite3.Connection, owner: str, client_order_id: int
) -> sqlite3.Row | None:
    """The indexed order of `owner` with that client order id (with the hash of the block that
    placed it as `placed_hash`), or None."""
    return conn.execute(
        "SELECT o.*, b.hash AS placed_hash FROM orders o"
        " LEFT JOIN blocks b ON b.number = o.placed_block"
        " WHERE o.owner = ? AND o.client_order_id = ?",
        (owner, str(client_order_id)),
    ).fetchone()


def client_order_id_used(conn: sqlite3.Connection, owner: str, client_order_id: int) -> bool:
    """Whether the index holds an order of `owner` with that client order id: the check on
    every order's path, so a probe by owner without the block join of `order_on_chain`."""
    row = conn.execute(
        "SELECT 1 FROM orders WHERE owner = ? AND client_order_id = ?",
        (owner, str(client_order_id)),
    ).fetchone()
    return row is not None


def open_order_count(conn: sqlite3.Connection, owner: str, interval: int) -> dict[str, int]:
    """How many open orders `owner` holds on chain (finalized) in the interval, by side."""
    return dict(
        conn.execute(
            "SELECT side, count(*) FROM orders WHERE owner = ? AND interval = ? AND status = 'open'"
            " GROUP BY side",
            (owner, interval),
        ).fetchall()
    )


# -- clearings --------------------------------------------------------------------------------


def is_cleared(conn: sqlite3.Connection, interval: int) -> bool:
    """Whether the interval's clearing is in a finalized block (as indexed)."""
    return (
        conn.execute("SELECT 1 FROM clearings WHERE interval = ?", (interval,)).fetchone()
        is not None
    )


def clearing(conn: sqlite3.Connection, interval: int) -> sqlite3.Row | None:
    """The interval's committed clearing (a `clearings` row: `zone_prices` as JSON,
    `grid_fees_paid` as decimal text), or None."""
    return conn.execute("SELECT * FROM clearings WHERE interval = ?", (interval,)).fetchone()


def voided(conn: sqlite3.Connection, interval: int) -> sqlite3.Row | None:
    """The interval's `voided_intervals` row if it was voided (no valid clearing by its end)."""
    return conn.execute("SELECT * FROM voided_intervals WHERE interval = ?", (interval,)).fetchone()


def clearing_trades(conn: sqlite3.Connection, interval: int) -> list[sqlite3.Row]:
    """The matches of the interval's clearing (`trades` rows), in the clearing's order."""
    return conn.execute(
        "SELECT * FROM trades WHERE interval = ? ORDER BY id", (interval,)
    ).fetchall()


def clearings(
    conn: sqlite3.Connection, *, before: int = ABOVE_ALL, limit: int
) -> list[sqlite3.Row]:
    """Committed clearings of intervals before `before`, latest first; at most `limit`."""
    return conn.execute(
        "SELECT * FROM clearings WHERE interval < ? ORDER BY interval DESC LIMIT ?",
        (before, limit),
    ).fetchall()


def zone_flows(conn: sqlite3.Connection, interval: int) -> list[sqlite3.Row]:
    """Energy the interval's clearing moves from each seller's zone to each buyer's zone
    (`from_zone`, `to_zone`, `quantity_wh`), trades within a zone included."""
    return conn.execute(
        "SELECT s.zone AS from_zone, b.zone AS to_zone, SUM(t.quantity_wh) AS quantity_wh"
        " FROM trades t JOIN orders s ON s.order_id = t.offer JOIN orders b ON b.order_id = t.bid"
        " WHERE t.interval = ? GROUP BY s.zone, b.zone ORDER BY s.zone, b.zone",
        (interval,),
    ).fetchall()


def interval_progress(conn: sqlite3.Connection, first: int, last: int) -> dict[int, dict]:
    """What the index knows of intervals `first..=last`, by interval: `orders` on chain, and
    its `clearing`, `progress` (of its latest registered clearing), `voided` and `settled`
    rows where it has them."""
    span = (first, last)
    found: dict[int, dict] = {}

    def at(k: int) -> dict:
        return found.setdefault(
            k, {"orders": 0, "clearing": None, "progress": None, "voided": None, "settled": None}
        )

    for r in conn.execute(
        "SELECT interval, COUNT(*) AS n FROM orders WHERE interval BETWEEN ? AND ?"
        " GROUP BY interval",
        span,
    ):
        at(r["interval"])["orders"] = r["n"]
    for table, key in (
        ("clearings", "clearing"),
        ("clearing_progress", "progress"),
        ("voided_intervals", "voided"),
        ("intervals_settled", "settled"),
    ):
        for r in conn.execute(f"SELECT * FROM {table} WHERE interval BETWEEN ? AND ?", span):
            at(r["interval"])[key] = r
    return found


def clearing_progress(conn: sqlite3.Connection, interval: int) -> sqlite3.Row | None:
    """The interval's latest registered clearing: its state, pages and pages verified."""
    return conn.execute(
        "SELECT * FROM clearing_progress WHERE interval = ?", (interval,)
    ).fetchone()


# -- settlement -------------------------------------------------------------------------------


def settled_in_block(conn: sqlite3.Connection, interval: int) -> int | None:
    """The finalized block that finished the interval's settlement (as indexed), or None."""
    row = conn.execute(
        "SELECT block_number FROM intervals_settled WHERE interval = ?", (interval,)
    ).fetchone()
    return None if row is None else row["block_number"]


def first_block_at(conn: sqlite3.Connection, unix_ms: int) -> int | None:
    """The first indexed block with a timestamp at or after `unix_ms`, or None."""
    return conn.execute(
        "SELECT min(number) FROM blocks WHERE timestamp_ms >= ?", (unix_ms,)
    ).fetchone()[0]


def is_settled(conn: sqlite3.Connection, interval: int) -> bool:
    """Whether the interval's settlement is in a finalized block (as indexed)."""
    return (
        conn.execute("SELECT 1 FROM intervals_settled WHERE interval = ?", (interval,)).fetchone()
        is not None
    )


def distributor(conn: sqlite3.Connection) -> str | None:
    """The account that holds the distributor's role now (the balancing party), or None."""
    return role_holder(conn, "distributor")


def role_holder(conn: sqlite3.Connection, role: str) -> str | None:
    """The account that holds `role` ('operator' or 'distributor') now, or None."""
    row = conn.execute("SELECT account FROM roles WHERE role = ?", (role,)).fetchone()
    return row["account"] if row else None


def report_from_index(
    conn: sqlite3.Connection, from_interval: int, to_interval: int, account: str | None = None
) -> dict[str, Any]:
    """The report over settled intervals in [from_interval, to_interval], from index.db. With
    `account`, only that party's row is kept (totals still cover everyone)."""
    settled = [
        r["interval"]
        for r in conn.execute(
            "SELECT interval FROM intervals_settled WHERE interval BETWEEN ? AND ?"
            " ORDER BY interval",
            (from_interval, to_interval),
        )
    ]
    trades, lines = [], []
    if settled:
        marks = ",".join("?" * len(settled))
        trades = [
            Trade(
                r["interval"],
                r["buyer"],
                r["seller"],
                r["quantity_wh"],
                r["buyer_price"],
                r["seller_price"],
            )
            for r in conn.execute(
                f"SELECT * FROM trades WHERE interval IN ({marks}) ORDER BY id", settled
            )
        ]
        lines = [
            SettlementLine(
                r["interval"],
                r["account"],
                r["contracted_wh"],
                r["metered_wh"],
                r["imbalance_wh"],
                int(r["amount"]),
                bool(r["estimated"]),
                r["trued_up_wh"],
            )
            for r in conn.execute(f"SELECT * FROM settlements WHERE interval IN ({marks})", settled)
        ]
    # The distributor the latest settlement in the period named; the role's holder otherwise.
    row = conn.execute(
        "SELECT distributor FROM intervals_settled WHERE interval BETWEEN ? AND ?"
        " AND distributor IS NOT NULL ORDER BY interval DESC LIMIT 1",
        (from_interval, to_interval),
    ).fetchone()
    balancing = row["distributor"] if row is not None else distributor(conn)
    report = build_report(trades, lines, balancing, settled)
    if account is not None:
        report["parties"] = [p for p in report["parties"] if p["account"] == account]
    return report


# -- participants -----------------------------------------------------------------------------


def participant_meters(conn: sqlite3.Connection, account: str) -> list[str]:
    """The participant's accredited meters (not revoked), in order."""
    return [
        r["meter"]
        for r in conn.execute(
            "SELECT meter FROM meters WHERE owner = ? AND revoked = 0 ORDER BY meter", (account,)
        )
    ]


def participant_orders(
    conn: sqlite3.Connection,
    account: str,
    *,
    interval: int | None = None,
    before: int = ABOVE_ALL,
    limit: int,
) -> list[sqlite3.Row]:
    """The participant's orders on chain with an order id below `before` (of one interval if
    given), latest interval first and, within one, latest placed first (an order id packs its
    interval and its place in the book); at most `limit`."""
    where, args = ["owner = ?", "order_id < ?"], [account, before]
    if interval is not None:
        where.append("interval = ?")
        args.append(interval)
    return conn.execute(
        f"SELECT * FROM orders WHERE {' AND '.join(where)} ORDER BY order_id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()


def positions(
    conn: sqlite3.Connection, account: str, *, before: int = ABOVE_ALL, limit: int
) -> list[sqlite3.Row]:
    """Per cleared interval before `before` where the participant traded, latest first: energy
    `bought` and `sold` (Wh), money `paid` and `received` (units); at most `limit`."""
    return conn.execute(
        "SELECT interval,"
        " SUM(CASE WHEN buyer = :a THEN quantity_wh ELSE 0 END) AS bought,"
        " SUM(CASE WHEN seller = :a THEN quantity_wh ELSE 0 END) AS sold,"
        " SUM(CASE WHEN buyer = :a THEN quantity_wh * buyer_price ELSE 0 END) AS paid,"
        " SUM(CASE WHEN seller = :a THEN quantity_wh * seller_price ELSE 0 END) AS received"
        " FROM trades WHERE (buyer = :a OR seller = :a) AND interval < :before GROUP BY interval"
        " ORDER BY interval DESC LIMIT :limit",
        {"a": account, "before": before, "limit": limit},
    ).fetchall()


def proceeds_awaiting_settlement(conn: sqlite3.Connection, account: str) -> int:
    """Units the participant's sales in cleared intervals not settled yet earned: what the
    clearing house keeps for it until its delivery is metered."""
    row = conn.execute(
        "SELECT COALESCE(SUM(quantity_wh * seller_price), 0) AS units FROM trades"
        " WHERE seller = ? AND interval NOT IN (SELECT interval FROM intervals_settled)",
        (account,),
    ).fetchone()
    return int(row["units"])


def settlement_lines(
    conn: sqlite3.Connection, account: str, *, before: int = ABOVE_ALL, limit: int
) -> list[sqlite3.Row]:
    """The participant's settlement lines (`settlements` rows: `amount` as decimal text) of
    intervals before `before`, latest first; at most `limit`."""
    return conn.execute(
        "SELECT * FROM settlements WHERE account = ? AND interval < ?"
        " ORDER BY interval DESC LIMIT ?",
        (account, before, limit),
    ).fetchall()


# -- meters -----------------------------------------------------------------------------------


def meters(
    conn: sqlite3.Connection, *, owner: str | None = None, after: str = "", limit: int
) -> list[sqlite3.Row]:
    """Meters ever accredited (revoked ones too), of one owner if given, with an id after
    `after`, in order of id; at most `limit`."""
    where, args = ["meter > ?"], [after]
    if owner is not None:
        where.append("owner = ?")
        args.append(owner)
    return conn.execute(
        f"SELECT * FROM meters WHERE {' AND '.join(where)} ORDER BY meter LIMIT ?",
        (*args, limit),
    ).fetchall()


def meter_accredited(conn: sqlite3.Connection, meter: str) -> bool:
    """Whether the meter was ever accredited (a revoked one too: its readings stay)."""
    return conn.execute("SELECT 1 FROM meters WHERE meter = ?", (meter,)).fetchone() is not None


def meter_readings(
    conn: sqlite3.Connection, meter: str, *, before: int = ABOVE_ALL, limit: int
) -> list[sqlite3.Row]:
    """The meter's accepted readings (`readings` rows) with a counter below `before`, latest
    first; at most `limit`."""
    return conn.execute(
        "SELECT * FROM readings WHERE meter = ? AND counter < ? ORDER BY counter DESC LIMIT ?",
        (meter, before, limit),
    ).fetchall()


# -- the index itself -------------------------------------------------------------------------


def index_meta(conn: sqlite3.Connection, key: str) -> str | None:
    """A value the indexer keeps about itself (`genesis`: the chain it follows)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row["value"]


def last_indexed_block(conn: sqlite3.Connection) -> int | None:
    """The number of the last finalized block the indexer has taken in, or None before any."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'last_block'").fetchone()
    return int(row["value"]) if row else None


def last_event_seq(conn: sqlite3.Connection) -> int:
    """The sequence number of the latest indexed event (0 with none)."""
    return conn.execute("SELECT COALESCE(MAX(seq), 0) AS m FROM events").fetchone()["m"]


def events_after(
    conn: sqlite3.Connection, seq: int, names: Sequence[str], limit: int
) -> list[sqlite3.Row]:
    """Indexed events (`events` rows: `data` as JSON) with one of these names after sequence
    number `seq`, in order; at most `limit`."""
    marks = ",".join("?" * len(names))
    return conn.execute(
        f"SELECT * FROM events WHERE seq > ? AND name IN ({marks}) ORDER BY seq LIMIT ?",
        (seq, *names, limit),
    ).fetchall()


# -- the operator's record (ops.db) -----------------------------------------------------------


def latest_clearing_attempt(ops: sqlite3.Connection, interval: int) -> sqlite3.Row | None:
    """The `state` and `error` of the scheduler's latest attempt to clear the interval, or
    None if it has made none."""
    return ops.execute(
        "SELECT state, error FROM clearing_attempts WHERE interval = ? ORDER BY id DESC LIMIT 1",
        (interval,),
    ).fetchone()


def clearing_refusal(ops: sqlite3.Connection, interval: int) -> str | None:
    """The error of the scheduler's latest attempt at the interval that failed (later ones may
    be voiding it), or None."""
    row = ops.execute(
        "SELECT error FROM clearing_attempts WHERE interval = ? AND error IS NOT NULL"
        " ORDER BY id DESC LIMIT 1",
        (interval,),
    ).fetchone()
    return None if row is None else row["error"]


def latest_clearing_attempts(
    ops: sqlite3.Connection, first: int, last: int
) -> dict[int, sqlite3.Row]:
    """The scheduler's latest attempt (`state`, `error`) for each interval in `first..=last`
    it has tried to clear."""
    rows = ops.execute(
        "SELECT interval, state, error FROM clearing_attempts WHERE id IN (SELECT MAX(id) FROM"
        " clearing_attempts WHERE interval BETWEEN ? AND ? GROUP BY interval)",
        (first, last),
    ).fetchall()
    return {r["interval"]: r for r in rows}


def committed_clearing_attempt(ops: sqlite3.Connection, interval: int) -> sqlite3.Row | None:
    """The latest attempt of the scheduler's that committed the interval's clearing: the
    `block_hash` and `extrinsic_index` that carry it and its `commit_latency_ms`; or None."""
    return ops.execute(
        "SELECT block_hash, extrinsic_index, commit_latency_ms FROM clearing_attempts WHERE"
        " interval = ? AND state = 'committed' ORDER BY id DESC LIMIT 1",
        (interval,),
    ).fetchone()


def acknowledge_alert(ops: sqlite3.Connection, alert_id: int, by: str) -> sqlite3.Row | None:
    """Marks an alert as seen by `by` (the first acknowledgement stays); its row, or None."""
    ops.execute(
        "UPDATE alerts SET acked_ms = ?, acked_by = ? WHERE id = ? AND acked_ms IS NULL",
        (now_ms(), by, alert_id),
    )
    return ops.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()


def alerts(ops: sqlite3.Connection, *, before: int = ABOVE_ALL, limit: int) -> list[sqlite3.Row]:
    """The operator's alerts (`alerts` rows) with an id below `before`, newest first; at most
    `limit`."""
    return ops.execute(
        "SELECT * FROM alerts WHERE id < ? ORDER BY id DESC LIMIT ?", (before, limit)
    ).fetchall()
