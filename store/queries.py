"""Read-side queries of the index (index.db) that more than one reader needs: the API's routes,
the server-sent events and the `wattchain report` command."""

from __future__ import annotations

import sqlite3
from typing import Any

from market.clearinghouse import SettlementLine, Trade, build_report


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
            )
            for r in conn.execute(f"SELECT * FROM settlements WHERE interval IN ({marks})", settled)
        ]
    row = conn.execute(
        "SELECT distributor FROM intervals_settled WHERE interval BETWEEN ? AND ?"
        " AND distributor IS NOT NULL ORDER BY interval DESC LIMIT 1",
        (from_interval, to_interval),
    ).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT account AS distributor FROM roles WHERE role = 'distributor'"
        ).fetchone()
    report = build_report(trades, lines, row["distributor"] if row else None, settled)
    if account is not None:
        report["parties"] = [p for p in report["parties"] if p["account"] == account]
    return report


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
