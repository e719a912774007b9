"""Order entry: place (POST /orders, or many at once: POST /orders/batch) and cancel (DELETE
/orders/{owner}/{client_order_id}), each signed by the owner's sr25519 key; and an order's
state, from the relay log and the index.

The checks themselves are in api/intake.py; a 202 means the order is in the write-ahead log
on disk. The routes that take orders are `async def` and send the intake (which waits for the
log's commit) to the thread pool themselves: for a sync route FastAPI would also validate the
answer in the pool, a second hand-off to a worker thread and back per request."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.concurrency import run_in_threadpool

from .. import intake
from ..deps import ChainDep, GuardsDep, IndexDep, OrderLogDep, SettingsDep
from ..models import (
    CancelCreate,
    ErrorPublic,
    OrderAccepted,
    OrderBatchCreate,
    OrderBatchPublic,
    OrderCreate,
    OrderPublic,
)
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
async def place_order(
    body: OrderCreate,
    response: Response,
    chain: ChainDep,
    orders: OrderLogDep,
    guards: GuardsDep,
    index: IndexDep,
    settings: SettingsDep,
) -> dict:
    """Accept a signed order for relay to the chain. 202 once it is durably logged; the same
    order sent again gets the same 202, another order with the same client_order_id a 409."""
    return await run_in_threadpool(intake.place_order, body, chain, orders, guards, index, settings)


@router.post(
    "/batch",
    operation_id="place_orders",
    status_code=status.HTTP_200_OK,
    response_model=OrderBatchPublic,
    response_model_exclude_none=True,  # an error without fields at fault has no "errors"
    responses={413: {"model": ErrorPublic}, 422: {"model": ErrorPublic}},
)
async def place_orders(
    body: OrderBatchCreate,
    chain: ChainDep,
    orders: OrderLogDep,
    guards: GuardsDep,
    index: IndexDep,
    settings: SettingsDep,
) -> OrderBatchPublic:
    """Place up to `max_batch_orders` signed orders at once. 200 with one result per order, in
    order: the status and body POST /orders would answer for it alone (202 once durably logged,
    or its 4xx), so a bad order refuses only itself. The accepted ones are logged with one
    commit. The batch as a whole is refused (422) when it is not a list of 1 to
    `max_batch_orders` orders."""
    results = await run_in_threadpool(
        intake.place_orders, body.orders, chain, orders, guards, index, settings
    )
    return OrderBatchPublic(results=results)


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
async def cancel_order(
    owner: AccountPath,
    client_order_id: ClientOrderIdPath,
    body: CancelCreate,
    chain: ChainDep,
    orders: OrderLogDep,
    guards: GuardsDep,
    index: IndexDep,
    settings: SettingsDep,
) -> dict:
    """Cancel an order before its gate closes, with the owner's signature over the cancel
    message. 202 once logged; repeating it gets the same answer."""
    return await run_in_threadpool(
        intake.cancel_order, owner, client_order_id, body, chain, orders, guards, index, settings
    )
