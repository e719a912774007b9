"""Server-sent events: clearings and settlements as the indexer sees them in finalized blocks.

`GET /stream` sends `event: clearing` and `event: settlement` messages whose `id` is the
index's event sequence number; a reconnecting client's Last-Event-ID (or ?after=) resumes
exactly after the last message it got. Without either, the stream starts with new events."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from market import from_chain_name
from store import INDEX_SCHEMA, connect, queries

from ..errors import APIError
from ..params import I64_MAX

router = APIRouter(tags=["stream"])

KINDS = {"ClearingAccepted": "clearing", "IntervalSettled": "settlement"}
POLL_S = 0.5
KEEPALIVE_S = 15.0
BATCH = 100  # events read per poll


def _message(conn, row) -> dict:
    data = json.loads(row["data"])
    interval = int(data["interval"])
    base = {
        "interval": interval,
        "block_number": row["block_number"],
        "block_hash": row["block_hash"],
        "extrinsic_index": row["extrinsic_index"],
    }
    if row["name"] == "ClearingAccepted":
        prices = [
            {"zone": int(p["zone"]), "price": int(p["price"])}
            for p in (data.get("zone_prices") or [])
        ]
        mechanism = from_chain_name(data["mechanism"])
        base.update(
            mechanism=mechanism,
            volume_wh=int(data["volume_wh"]),
            matches=int(data["matches"]),
            zone_prices=prices,
            price=prices[0]["price"] if mechanism == "uniform" and prices else None,
            grid_fees_paid=int(data["grid_fees_paid"]),
        )
    else:
        report = queries.report_from_index(conn, interval, interval)
        base.update(
            participants=int(data["participants"]),
            shortfall_wh=int(data["shortfall_wh"]),
            surplus_wh=int(data["surplus_wh"]),
            balanced=report["balanced"],
            totals=report["totals"],
        )
    return base


@router.get(
    "/stream",
    operation_id="stream_events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    request: Request,
    after: int | None = Query(None, ge=0, le=I64_MAX, description="Resume after this id"),
    last_event_id: str | None = Header(
        None, pattern=r"^[0-9]{1,19}$", description="Resume after this id (EventSource sends it)"
    ),
) -> StreamingResponse:
    """Clearings and settlements, live (text/event-stream). Both resume points are checked
    before the stream starts: a bad one is a 422, never a stream cut short."""
    if after is None and last_event_id:
        after = int(last_event_id)
        if after > I64_MAX:
            raise APIError(
                422,
                "InvalidRequest",
                f"Last-Event-ID {last_event_id} is not an event id (at most {I64_MAX})",
                field="last-event-id",
            )
    conn = connect(
        request.app.state.data.index_path, INDEX_SCHEMA, synchronous="NORMAL", readonly=True
    )
    if after is None:
        after = queries.last_event_seq(conn)

    async def messages():
        cursor = after
        last_sent = time.monotonic()
        try:
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                rows = queries.events_after(conn, cursor, tuple(KINDS), BATCH)
                for row in rows:
                    cursor = row["seq"]
                    payload = json.dumps(_message(conn, row), separators=(",", ":"))
                    yield f"id: {row['seq']}\nevent: {KINDS[row['name']]}\ndata: {payload}\n\n"
                    last_sent = time.monotonic()
                if not rows:
                    if time.monotonic() - last_sent > KEEPALIVE_S:
                        yield ": keepalive\n\n"
                        last_sent = time.monotonic()
                    await asyncio.sleep(POLL_S)
        finally:
            conn.close()

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
