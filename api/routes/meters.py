"""Accredited meters and their validated readings (as the chain accepted them)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from ..deps import CursorQuery, IndexDep, LimitQuery
from ..errors import APIError
from ..models import ErrorPublic, MeterPublic, Page, ReadingPublic
from ..pagination import decode_cursor, page
from .participants import account_param

router = APIRouter(prefix="/meters", tags=["meters"])


@router.get("", operation_id="list_meters", response_model=Page[MeterPublic])
def list_meters(
    index: IndexDep,
    owner: str | None = Query(None),
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[MeterPublic]:
    key = decode_cursor(cursor, 1)
    where, args = ["meter > ?"], [key[0] if key else ""]
    if owner is not None:
        where.append("owner = ?")
        args.append(account_param(owner))
    rows = index.execute(
        f"SELECT * FROM meters WHERE {' AND '.join(where)} ORDER BY meter LIMIT ?",
        (*args, limit + 1),
    ).fetchall()
    rows, nxt = page(rows, limit, lambda r: [r["meter"]])
    return Page[MeterPublic](
        items=[
            MeterPublic(
                meter=r["meter"],
                owner=r["owner"],
                zone=r["zone"],
                source=r["source"],
                revoked=bool(r["revoked"]),
                block_number=r["block_number"],
            )
            for r in rows
        ],
        next_cursor=nxt,
    )


@router.get(
    "/{meter}/readings",
    operation_id="list_readings",
    response_model=Page[ReadingPublic],
    responses={404: {"model": ErrorPublic}},
)
def list_readings(
    meter: str, index: IndexDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[ReadingPublic]:
    """A meter's accepted readings, latest first: energy imported and exported per reading
    (the baseline reading carries the registers themselves)."""
    meter = meter.lower()
    if index.execute("SELECT 1 FROM meters WHERE meter = ?", (meter,)).fetchone() is None:
        raise APIError(404, "UnknownMeter", f"meter {meter} is not accredited")
    key = decode_cursor(cursor, 1)
    rows = index.execute(
        "SELECT * FROM readings WHERE meter = ? AND counter < ? ORDER BY counter DESC LIMIT ?",
        (meter, key[0] if key else 2**62, limit + 1),
    ).fetchall()
    rows, nxt = page(rows, limit, lambda r: [r["counter"]])
    return Page[ReadingPublic](items=[ReadingPublic(**dict(r)) for r in rows], next_cursor=nxt)
