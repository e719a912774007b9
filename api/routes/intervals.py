"""Intervals: the order book of an interval (per zone), its clearing (prices, matches, the
block and extrinsic that committed it), the list of clearings, and its settlement report."""

from __future__ import annotations

import json
import sqlite3

from fastapi import APIRouter, Query

from market import now_ms
from store import queries

from ..deps import ChainDep, CursorQuery, IndexDep, LimitQuery, OpsDep
from ..errors import APIError
from ..models import (
    BookLevel,
    BookOrder,
    BookPublic,
    ClearingPublic,
    ErrorPublic,
    FlowPublic,
    IntervalProgressPublic,
    MatchPublic,
    Page,
    ZonePricePublic,
)
from ..pagination import decode_cursor, page
from ..params import IntervalPath, IntervalQuery, ZoneQuery

router = APIRouter(tags=["intervals"])


def _levels(index, interval: int, zone: int | None, side: str) -> list[BookLevel]:
    return [
        BookLevel(price_ticks=r["price_ticks"], quantity_wh=r["q"], orders=r["n"])
        for r in queries.book_levels(index, interval, zone, side)
    ]


@router.get("/intervals/{interval}/book", operation_id="get_order_book", response_model=BookPublic)
def get_order_book(
    interval: IntervalPath,
    index: IndexDep,
    chain: ChainDep,
    zone: ZoneQuery = None,
    side: str | None = Query(None, pattern="^(bid|offer)$"),
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> BookPublic:
    """The interval's orders as the chain holds them (finalized blocks): price levels per side,
    and the orders, bids best first then offers best first, paginated."""
    params = chain.params()
    gate = params.gate_closure(interval)
    if queries.is_cleared(index, interval):
        state = "cleared"
    elif queries.voided(index, interval) is not None:
        state = "voided"
    else:
        state = "closed" if now_ms() >= gate else "open"
    key = decode_cursor(cursor, 3)
    rows = queries.book_orders(index, interval, zone=zone, side=side, after=key, limit=limit + 1)
    rows, nxt = page(rows, limit, queries.book_position)
    return BookPublic(
        interval=interval,
        zone=zone,
        gate_closure_ms=gate,
        state=state,
        bids=_levels(index, interval, zone, "bid") if side != "offer" else [],
        offers=_levels(index, interval, zone, "offer") if side != "bid" else [],
        items=[BookOrder.from_row(r) for r in rows],
        next_cursor=nxt,
    )


def _clearing(row: sqlite3.Row, trades: list[sqlite3.Row] | None) -> ClearingPublic:
    """The clearing's model; its matches only when `trades` are given."""
    prices = [ZonePricePublic(**p) for p in json.loads(row["zone_prices"])]
    matches = None
    if trades is not None:
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
            for t in trades
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
def get_clearing(interval: IntervalPath, index: IndexDep, ops: OpsDep) -> ClearingPublic:
    """The committed clearing: prices, matches (with buyer and seller), and the block hash and
    extrinsic index that carry it. 404 until it is in a finalized block."""
    row = queries.clearing(index, interval)
    if row is None:
        voided = queries.voided(index, interval)
        if voided is not None:
            raise APIError(
                404,
                "IntervalVoided",
                f"interval {interval} had no valid clearing by its end: its {voided['orders']}"
                f" orders did not trade and every bid's hold was released"
                f" (block #{voided['block_number']})",
            )
        attempt = queries.latest_clearing_attempt(ops, interval)
        if attempt is not None and attempt["state"] == "rejected":
            raise APIError(
                404,
                "ClearingRejected",
                f"the chain rejected the clearing of interval {interval}: {attempt['error']}",
            )
        raise APIError(404, "NotCleared", f"interval {interval} has no committed clearing (yet)")
    clearing = _clearing(row, queries.clearing_trades(index, row["interval"]))
    clearing.flows = [FlowPublic(**dict(r)) for r in queries.zone_flows(index, interval)]
    return clearing


# Enough for a day of 15-minute intervals, or a page of the demo's short ones.
MAX_PROGRESS_SPAN = 200


@router.get(
    "/intervals",
    operation_id="list_interval_progress",
    response_model=list[IntervalProgressPublic],
    responses={422: {"model": ErrorPublic}},
)
def list_interval_progress(
    from_interval: IntervalQuery,
    to_interval: IntervalQuery,
    index: IndexDep,
    ops: OpsDep,
    chain: ChainDep,
) -> list[IntervalProgressPublic]:
    """Each interval of `from_interval..=to_interval` (at most 200) and how far it has come:
    open, empty, closed, verifying (a clearing's pages being verified on chain: `verified_pages`
    of `pages`), rejected, cleared, voided or settled, with its clearing's summary.
    Times follow the latest parameters, as the book's do: an interval closed under an earlier
    gate length shows that of today (its length cannot change once orders exist)."""
    if to_interval < from_interval:
        raise APIError(422, "InvalidRequest", "to_interval is before from_interval")
    if to_interval - from_interval >= MAX_PROGRESS_SPAN:
        raise APIError(422, "InvalidRequest", f"at most {MAX_PROGRESS_SPAN} intervals per request")
    params, now = chain.params(), now_ms()
    known = queries.interval_progress(index, from_interval, to_interval)
    attempts = queries.latest_clearing_attempts(ops, from_interval, to_interval)
    out = []
    for k in range(from_interval, to_interval + 1):
        row = known.get(k, {})
        clearing, voided, progress = row.get("clearing"), row.get("voided"), row.get("progress")
        attempt = attempts.get(k)
        gate = params.gate_closure(k)
        item = IntervalProgressPublic(
            interval=k,
            start_ms=params.interval_start(k),
            gate_closure_ms=gate,
            state="open" if now < gate else "closed" if row.get("orders") else "empty",
            orders=row.get("orders", 0),
        )
        if row.get("settled") is not None:
            item.state = "settled"
        elif clearing is not None:
            item.state = "cleared"
        elif voided is not None:
            item.state, item.block_number = "voided", voided["block_number"]
        elif progress is not None and progress["state"] in ("registered", "verifying"):
            item.state = "verifying"
        elif progress is not None and progress["state"] == "rejected":
            item.state, item.error = "rejected", progress["error"]
        elif attempt is not None and attempt["state"] == "rejected":
            item.state, item.error = "rejected", attempt["error"]
        if progress is not None:
            item.pages, item.verified_pages = progress["pages"], progress["verified_pages"]
            item.rejected_page = progress["page"]
        if clearing is not None:
            summary = _clearing(clearing, None)
            item.mechanism, item.price = summary.mechanism, summary.price
            item.volume_wh, item.match_count = summary.volume_wh, summary.match_count
            item.block_number = summary.block_number
        out.append(item)
    return out


@router.get("/clearings", operation_id="list_clearings", response_model=Page[ClearingPublic])
def list_clearings(
    index: IndexDep, limit: LimitQuery = 20, cursor: CursorQuery = None
) -> Page[ClearingPublic]:
    """Committed clearings, latest interval first (without their matches)."""
    key = decode_cursor(cursor, 1)
    rows = queries.clearings(index, before=key[0] if key else queries.ABOVE_ALL, limit=limit + 1)
    rows, nxt = page(rows, limit, lambda r: [r["interval"]])
    return Page[ClearingPublic](items=[_clearing(r, None) for r in rows], next_cursor=nxt)


@router.get(
    "/intervals/{interval}/settlement",
    operation_id="get_interval_settlement",
    responses={404: {"model": ErrorPublic}},
)
def get_interval_settlement(interval: IntervalPath, index: IndexDep) -> dict:
    """The clearing house's report of one settled interval: per party, energy (Wh) and money
    (units and BRL), the distributor balancing both to zero."""
    if not queries.is_settled(index, interval):
        raise APIError(404, "NotSettled", f"interval {interval} is not settled (yet)")
    return queries.report_from_index(index, interval, interval)
