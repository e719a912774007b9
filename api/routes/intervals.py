"""Intervals: the order book of an interval (per zone), its clearing (prices, matches, the
block and extrinsic that committed it), the list of clearings, and its settlement report."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query

from market import now_ms
from store import report_from_index

from ..deps import ChainDep, CursorQuery, IndexDep, LimitQuery, OpsDep
from ..errors import APIError
from ..models import (
    BookLevel,
    BookOrder,
    BookPublic,
    ClearingPublic,
    ErrorPublic,
    MatchPublic,
    Page,
    ZonePricePublic,
)
from ..pagination import decode_cursor, page

router = APIRouter(tags=["intervals"])

_SIDE_RANK = {"bid": 0, "offer": 1}


def _levels(index, interval: int, zone: int | None, side: str) -> list[BookLevel]:
    order = "DESC" if side == "bid" else "ASC"
    sql = (
        "SELECT price_ticks, SUM(quantity_wh) AS q, COUNT(*) AS n FROM orders"
        " WHERE interval = ? AND side = ? AND status != 'cancelled'"
        + (" AND zone = ?" if zone is not None else "")
        + f" GROUP BY price_ticks ORDER BY price_ticks {order}"
    )
    args = (interval, side) + ((zone,) if zone is not None else ())
    return [
        BookLevel(price_ticks=r["price_ticks"], quantity_wh=r["q"], orders=r["n"])
        for r in index.execute(sql, args)
    ]


@router.get("/intervals/{interval}/book", operation_id="get_order_book", response_model=BookPublic)
def get_order_book(
    interval: int,
    index: IndexDep,
    chain: ChainDep,
    zone: int | None = Query(None, description="Only this grid zone"),
    side: str | None = Query(None, pattern="^(bid|offer)$"),
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> BookPublic:
    """The interval's orders as the chain holds them (finalized blocks): price levels per side,
    and the orders, bids best first then offers best first, paginated."""
    params = chain.params()
    cleared = (
        index.execute("SELECT 1 FROM clearings WHERE interval = ?", (interval,)).fetchone()
        is not None
    )
    gate = params.gate_closure(interval)
    state = "cleared" if cleared else ("closed" if now_ms() >= gate else "open")
    key = decode_cursor(cursor, 3)
    where = ["interval = ?", "status != 'cancelled'"]
    args: list = [interval]
    if zone is not None:
        where.append("zone = ?")
        args.append(zone)
    if side is not None:
        where.append("side = ?")
        args.append(side)
    sort = (
        "(CASE side WHEN 'bid' THEN 0 ELSE 1 END),"
        " (CASE side WHEN 'bid' THEN -price_ticks ELSE price_ticks END), order_id"
    )
    if key:
        where.append(f"({sort}) > (?, ?, ?)")
        args += key
    rows = index.execute(
        f"SELECT * FROM orders WHERE {' AND '.join(where)} ORDER BY {sort} LIMIT ?",
        (*args, limit + 1),
    ).fetchall()
    rows, nxt = page(
        rows,
        limit,
        lambda r: [
            _SIDE_RANK[r["side"]],
            -r["price_ticks"] if r["side"] == "bid" else r["price_ticks"],
            r["order_id"],
        ],
    )
    items = [
        BookOrder(
            order_id=r["order_id"],
            owner=r["owner"],
            client_order_id=int(r["client_order_id"]),
            side=r["side"],
            quantity_wh=r["quantity_wh"],
            price_ticks=r["price_ticks"],
            zone=r["zone"],
            source=r["source"],
            renewable_only=None if r["renewable_only"] is None else bool(r["renewable_only"]),
            status=r["status"],
            filled_wh=r["filled_wh"],
        )
        for r in rows
    ]
    return BookPublic(
        interval=interval,
        zone=zone,
        gate_closure_ms=gate,
        state=state,
        bids=_levels(index, interval, zone, "bid") if side != "offer" else [],
        offers=_levels(index, interval, zone, "offer") if side != "bid" else [],
        items=items,
        next_cursor=nxt,
    )


def _clearing(row, index, with_matches: bool) -> ClearingPublic:
    prices = [ZonePricePublic(**p) for p in json.loads(row["zone_prices"])]
    matches = None
    if with_matches:
        matches = [
            MatchPublic(
                bid=t["bid"],
                offer=t["offer"],
                buyer=t["buyer"],
                seller=t["seller"],
                quantity_wh=t["quantity_wh"],
                buyer_price=t["buyer_price"],
                seller_price=t["seller_price"],
            )
            for t in index.execute(
                "SELECT * FROM trades WHERE interval = ? ORDER BY id", (row["interval"],)
            )
        ]
    return ClearingPublic(
        interval=row["interval"],
        mechanism=row["mechanism"],
        price=prices[0].price if row["mechanism"] == "uniform" and prices else None,
        zone_prices=prices,
        volume_wh=row["volume_wh"],
        match_count=row["matches"],
        grid_fees_paid=int(row["grid_fees_paid"]),
        block_number=row["block_number"],
        block_hash=row["block_hash"],
        extrinsic_index=row["extrinsic_index"],
        timestamp_ms=row["timestamp_ms"],
        matches=matches,
    )


@router.get(
    "/intervals/{interval}/clearing",
    operation_id="get_clearing",
    response_model=ClearingPublic,
    responses={404: {"model": ErrorPublic}},
)
def get_clearing(interval: int, index: IndexDep, ops: OpsDep) -> ClearingPublic:
    """The committed clearing: prices, matches (with buyer and seller), and the block hash and
    extrinsic index that carry it. 404 until it is in a finalized block."""
    row = index.execute("SELECT * FROM clearings WHERE interval = ?", (interval,)).fetchone()
    if row is None:
        attempt = ops.execute(
            "SELECT state, error FROM clearing_attempts WHERE interval = ?"
            " ORDER BY id DESC LIMIT 1",
            (interval,),
        ).fetchone()
        if attempt is not None and attempt["state"] == "rejected":
            raise APIError(
                404,
                "ClearingRejected",
                f"the chain rejected the clearing of interval {interval}: {attempt['error']}",
            )
        raise APIError(404, "NotCleared", f"interval {interval} has no committed clearing (yet)")
    return _clearing(row, index, True)


@router.get("/clearings", operation_id="list_clearings", response_model=Page[ClearingPublic])
def list_clearings(
    index: IndexDep, limit: LimitQuery = 20, cursor: CursorQuery = None
) -> Page[ClearingPublic]:
    """Committed clearings, latest interval first (without their matches)."""
    key = decode_cursor(cursor, 1)
    rows = index.execute(
        "SELECT * FROM clearings WHERE interval < ? ORDER BY interval DESC LIMIT ?",
        (key[0] if key else 2**62, limit + 1),
    ).fetchall()
    rows, nxt = page(rows, limit, lambda r: [r["interval"]])
    return Page[ClearingPublic](items=[_clearing(r, index, False) for r in rows], next_cursor=nxt)


@router.get(
    "/intervals/{interval}/settlement",
    operation_id="get_interval_settlement",
    responses={404: {"model": ErrorPublic}},
)
def get_interval_settlement(interval: int, index: IndexDep) -> dict:
    """The clearing house's report of one settled interval: per party, energy (Wh) and money
    (units and BRL), the distributor balancing both to zero."""
    if (
        index.execute("SELECT 1 FROM intervals_settled WHERE interval = ?", (interval,)).fetchone()
        is None
    ):
        raise APIError(404, "NotSettled", f"interval {interval} is not settled (yet)")
    return report_from_index(index, interval, interval)
