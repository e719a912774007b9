"""Order entry: place (POST /orders) and cancel (DELETE /orders/{owner}/{client_order_id}),
each signed by the owner's sr25519 key; and an order's state, from the relay log and the index.

The checks themselves are in api/intake.py; a 202 means the order is in the write-ahead log
on disk."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from .. import intake
from ..deps import ChainDep, IndexDep, OrderLogDep, SettingsDep
from ..models import CancelCreate, ErrorPublic, OrderAccepted, OrderCreate, OrderPublic
from ..params import AccountPath, ClientOrderIdPath

router = APIRouter(prefix="/orders", tags=["orders"])

_ERRORS = {
    400: {"model": ErrorPublic},
    403: {"model": ErrorPublic},
    404: {"model": ErrorPublic},
    409: {"model": ErrorPublic},
    422: {"model": ErrorPublic},
    503: {"model": ErrorPublic},
}


@router.post(
    "",
    operation_id="place_order",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OrderAccepted,
    responses=_ERRORS,
)
def place_order(
    body: OrderCreate,
    response: Response,
    chain: ChainDep,
    orders: OrderLogDep,
    index: IndexDep,
    settings: SettingsDep,
) -> dict:
    """Accept a signed order for relay to the chain. 202 once it is durably logged; the same
    order sent again gets the same 202, another order with the same client_order_id a 409."""
    return intake.place_order(body, chain, orders, index, settings)


@router.get(
    "/{owner}/{client_order_id}",
    operation_id="get_order",
    response_model=OrderPublic,
    responses=_ERRORS,
)
def get_order(
    owner: AccountPath, client_order_id: ClientOrderIdPath, orders: OrderLogDep, index: IndexDep
) -> OrderPublic:
    """Where an order is: in the relay log (pending, submitted, rejected with the chain's
    reason) and on chain (open, cancelled, cleared with its fill)."""
    owner, _ = intake.owner_key(owner)
    return intake.order_public(owner, client_order_id, orders, index)


@router.delete(
    "/{owner}/{client_order_id}",
    operation_id="cancel_order",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OrderAccepted,
    responses=_ERRORS,
)
def cancel_order(
    owner: AccountPath,
    client_order_id: ClientOrderIdPath,
    body: CancelCreate,
    chain: ChainDep,
    orders: OrderLogDep,
    index: IndexDep,
    settings: SettingsDep,
) -> dict:
    """Cancel an order before its gate closes, with the owner's signature over the cancel
    message. 202 once logged; repeating it gets the same answer."""
    return intake.cancel_order(owner, client_order_id, body, chain, orders, index, settings)
