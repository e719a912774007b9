"""Accredited meters and their validated readings (as the chain accepted them)."""

from __future__ import annotations

from fastapi import APIRouter

from store import queries

from ..deps import CursorQuery, IndexDep, LimitQuery
from ..errors import APIError
from ..models import ErrorPublic, MeterPublic, Page, ReadingPublic
from ..pagination import decode_cursor, page
from ..params import AccountQuery, account_key

router = APIRouter(prefix="/meters", tags=["meters"])


@router.get("", operation_id="list_meters", response_model=Page[MeterPublic])
def list_meters(
    index: IndexDep,
    owner: AccountQuery = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[MeterPublic]:
    key = decode_cursor(cursor, 1, str)
    rows = queries.meters(
        index,
        owner=account_key(owner, "owner")[0] if owner is not None else None,
        after=key[0] if key else "",
        limit=limit + 1,
    )
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
    if not queries.meter_accredited(index, meter):
        raise APIError(404, "UnknownMeter", f"meter {meter} is not accredited")
    key = decode_cursor(cursor, 1)
    rows = queries.meter_readings(
        index, meter, before=key[0] if key else queries.ABOVE_ALL, limit=limit + 1
    )
    rows, nxt = page(rows, limit, lambda r: [r["counter"]])
    return Page[ReadingPublic](items=[ReadingPublic(**dict(r)) for r in rows], next_cursor=nxt)
