"""The clearing house's report over a period: per participant, money in BRL and energy in Wh,
with the distributor as the balancing party so that both add up to zero."""

from __future__ import annotations

from fastapi import APIRouter, Query

from store import queries

from ..deps import IndexDep
from ..errors import APIError
from .participants import account_param

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("/clearing-house", operation_id="get_clearing_house_report")
def get_clearing_house_report(
    index: IndexDep,
    from_interval: int = Query(..., ge=0),
    to_interval: int = Query(..., ge=0),
    account: str | None = Query(None, description="Only this party's row"),
) -> dict:
    """Settled intervals in [from_interval, to_interval]: per party, energy bought, sold,
    metered and balanced by the utility, and money paid and received, in units and BRL."""
    if to_interval < from_interval:
        raise APIError(422, "InvalidRequest", "to_interval is before from_interval")
    if to_interval - from_interval > 100_000:
        raise APIError(422, "InvalidRequest", "period too long (at most 100000 intervals)")
    return queries.report_from_index(
        index, from_interval, to_interval, account_param(account) if account else None
    )
