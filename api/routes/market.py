"""The market as a client needs it before placing an order: genesis hash (signed messages bind
it), parameters, the current and next open interval; and the operator's alerts, which the
operator acknowledges once logged in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from market import now_ms
from store import queries

from ..auth import OperatorSession
from ..deps import ChainDep, CursorQuery, IndexDep, LimitQuery, OpsDep, SettingsDep
from ..errors import APIError
from ..models import AlertPublic, ErrorPublic, HealthPublic, MarketPublic, Page
from ..pagination import decode_cursor, page
from ..params import I64_MAX

router = APIRouter(tags=["market"])


@router.get("/market", operation_id="get_market", response_model=MarketPublic)
def get_market(chain: ChainDep, index: IndexDep, settings: SettingsDep) -> MarketPublic:
    """Genesis hash, market parameters, the current interval and the next one still open.
    While the node cannot be read they are the last values read (`stale`, `node_reachable`);
    503 ChainUnavailable only when the API has read none yet."""
    view = chain.market_view()
    params = view.params
    now = now_ms()
    nxt = params.first_open_interval(now, settings.order_margin_ms)
    heads = view.heads
    return MarketPublic(
        genesis_hash="0x" + view.genesis_hash.hex(),
        params=params.as_dict(),
        now_ms=now,
        current_interval=params.interval_at(now),
        next_open_interval=nxt,
        next_gate_closure_ms=params.gate_closure(nxt),
        order_margin_ms=settings.order_margin_ms,
        max_intervals_ahead=view.max_intervals_ahead,
        best_block=heads.get("best_block"),
        finalized_block=heads.get("finalized_block"),
        indexed_block=queries.last_indexed_block(index),
        distributor=queries.distributor(index),
        operator=queries.role_holder(index, "operator"),
        node_rpc_url=settings.public_rpc_url or settings.node_url,
        timezone=settings.timezone,
        node_reachable=view.node_reachable,
        stale=view.stale,
    )


@router.get("/health", operation_id="get_health", response_model=HealthPublic)
def get_health(chain: ChainDep) -> HealthPublic:
    """The API is up (always 200 while it serves); whether it can read the node now. Never waits
    for the node."""
    return HealthPublic(
        status="ok",
        node_reachable=chain.node_reachable,
        node_last_seen_ms=chain.last_ok_ms,
    )


@router.get("/alerts", operation_id="list_alerts", response_model=Page[AlertPublic])
def list_alerts(
    ops: OpsDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[AlertPublic]:
    """What the workers raised for the operator (rejected clearings, missing readings, ...),
    newest first."""
    key = decode_cursor(cursor, 1)
    rows = queries.alerts(ops, before=key[0] if key else queries.ABOVE_ALL, limit=limit + 1)
    rows, nxt = page(rows, limit, lambda r: [r["id"]])
    return Page[AlertPublic](items=[AlertPublic(**dict(r)) for r in rows], next_cursor=nxt)


@router.post(
    "/alerts/{alert_id}/ack",
    operation_id="acknowledge_alert",
    response_model=AlertPublic,
    responses={401: {"model": ErrorPublic}, 403: {"model": ErrorPublic}},
)
def acknowledge_alert(
    alert_id: Annotated[int, Path(ge=1, le=I64_MAX)], ops: OpsDep, session: OperatorSession
) -> AlertPublic:
    """The operator marks an alert as seen (logged in: POST /session). The first
    acknowledgement stays, with its account and time."""
    row = queries.acknowledge_alert(ops, alert_id, session.account)
    if row is None:
        raise APIError(404, "UnknownAlert", f"no alert {alert_id}")
    return AlertPublic(**dict(row))
