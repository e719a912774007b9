"""The clearing house's report over a period: per participant, money in BRL and energy in Wh,
with the distributor as the balancing party so that both add up to zero."""

from __future__ import annotations

from fastapi import APIRouter

from store import queries

from ..deps import IndexDep
from ..errors import APIError
from ..params import AccountQuery, IntervalQuery, account_key

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("/clearing-house", operation_id="get_clearing_house_report")
def get_clearing_house_report(
    index: IndexDep,
    from_interval: IntervalQuery,
    to_interval: IntervalQuery,
    account: AccountQuery = None,
) -> dict:
    """Settled intervals in [from_interval, to_interval]: per party, energy bought, sold,
    metered and balanced by the utility, and money paid and received, in units and BRL."""
    if to_interval < from_interval:
        raise APIError(422, "InvalidRequest", "to_interval is before from_interval")
    if to_interval - from_interval > 100_000:
        raise APIError(422, "InvalidRequest", "period too long (at most 100000 intervals)")
    party = account_key(account, "account")[0] if account is not None else None
    return queries.report_from_index(index, from_interval, to_interval, party)
