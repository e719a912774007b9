"""Order entry: place (POST /orders) and cancel (DELETE /orders/{owner}/{client_order_id}),
each signed by the owner's sr25519 key; and an order's state, from the relay log and the index.

The API checks what the chain would check (signature, registration, zone, bounds, gate
closure, funds for a bid) so that a bad order is refused now with a 4xx naming the reason,
and answers 202 only once the order is in the write-ahead log on disk."""
from __future__ import annotations

import json
import time

from fastapi import APIRouter, Response, status

from offchain.chain import OrderSpec, cancel_message, order_message, public_key, ss58, verify_sr25519
from offchain.orderlog import spec_json

from ..deps import ChainDep, IndexDep, OrderLogDep, SettingsDep
from ..errors import APIError
from ..models import CancelCreate, ErrorPublic, OrderAccepted, OrderCreate, OrderPublic

router = APIRouter(prefix="/orders", tags=["orders"])

_ERRORS = {400: {"model": ErrorPublic}, 403: {"model": ErrorPublic}, 404: {"model": ErrorPublic},
           409: {"model": ErrorPublic}, 422: {"model": ErrorPublic}, 503: {"model": ErrorPublic}}


def _owner(value: str) -> tuple[str, bytes]:
    try:
        raw = public_key(value)
    except (ValueError, TypeError):
        raise APIError(400, "InvalidAccount", f"owner {value!r} is not an SS58 address or 32-byte public key") from None
    return ss58(raw), raw


def _signature(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text[2:])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@router.post("", operation_id="place_order", status_code=status.HTTP_202_ACCEPTED, response_model=OrderAccepted,
             responses=_ERRORS)
def place_order(body: OrderCreate, response: Response, chain: ChainDep, orders: OrderLogDep, index: IndexDep,
                settings: SettingsDep) -> dict:
    """Accept a signed order for relay to the chain. 202 once it is durably logged; the same
    order sent again gets the same 202, another order with the same client_order_id a 409."""
    owner, owner_raw = _owner(body.owner)
    try:
        spec = OrderSpec(body.client_order_id, body.interval, body.side, body.quantity_wh, body.price_ticks, body.zone,
                         body.source, body.renewable_only)
    except ValueError as exc:
        raise APIError(422, "InvalidRequest", str(exc)) from None
    if not verify_sr25519(owner_raw, order_message(chain.genesis_hash, owner_raw, spec), _signature(body.signature)):
        raise APIError(400, "BadSignature", "signature does not verify for the owner over the order message "
                       "(wattchain:order:v1 ++ genesis hash ++ owner ++ OrderSpec)")

    existing = orders.order(owner, spec.client_order_id)
    if existing is not None:
        if existing["spec"] == spec_json(spec):
            return json.loads(existing["response"])
        raise APIError(409, "ClientOrderIdReused",
                       f"client_order_id {spec.client_order_id} of {owner} is taken by a different order")
    on_chain = index.execute("SELECT interval, side, quantity_wh, price_ticks, zone FROM orders WHERE owner = ? AND"
                             " client_order_id = ?", (owner, str(spec.client_order_id))).fetchone()
    if on_chain is not None:
        raise APIError(409, "ClientOrderIdReused",
                       f"client_order_id {spec.client_order_id} of {owner} is already used on chain")

    zone = chain.zone_of(owner)
    if zone is None:
        raise APIError(403, "NotRegistered", f"{owner} is not a registered participant")
    if zone != spec.zone:
        raise APIError(422, "WrongZone", f"{owner} trades in zone {zone}, the order says zone {spec.zone}")
    params = chain.params()
    if spec.quantity_wh == 0:
        raise APIError(422, "ZeroQuantity", "quantity_wh must be positive")
    if spec.quantity_wh > params.max_quantity_wh:
        raise APIError(422, "QuantityTooLarge", f"quantity_wh {spec.quantity_wh} is above the market's maximum "
                       f"{params.max_quantity_wh}")
    if not params.min_price_ticks <= spec.price_ticks <= params.max_price_ticks:
        raise APIError(422, "PriceOutOfBounds", f"price_ticks {spec.price_ticks} is outside "
                       f"[{params.min_price_ticks}, {params.max_price_ticks}]")
    if spec.side == "offer" and spec.renewable_only:
        raise APIError(422, "InvalidEnergyConstraint", "renewable_only is for bids; an offer states its source")
    now = _now_ms()
    gate = params.gate_closure(spec.interval)
    if now + settings.order_margin_ms >= gate:
        raise APIError(422, "GateClosed", f"orders for interval {spec.interval} closed at {gate} ms (unix); this API "
                       f"stops taking them {settings.order_margin_ms} ms earlier so they reach a block in time; next "
                       f"open interval: {params.first_open_interval(now, settings.order_margin_ms)}")
    current = params.interval_at(now)
    if spec.interval > current + chain.max_intervals_ahead:
        raise APIError(422, "IntervalTooFarAhead", f"interval {spec.interval} is more than "
                       f"{chain.max_intervals_ahead} intervals after the current one ({current})")
    cap = settings.max_orders_per_interval
    if cap is not None and orders.interval_count(spec.interval) >= cap:
        raise APIError(422, "IntervalFull", f"interval {spec.interval} has its {cap} orders; try a later one")
    if spec.side == "bid":
        cost = spec.price_ticks * spec.quantity_wh
        committed = orders.unsettled_bid_cost(owner)
        free = chain.balance(owner).free
        if cost + committed > free:
            free = chain.balance(owner, fresh=True).free
        if cost + committed > free:
            raise APIError(422, "InsufficientBalance", f"the bid holds {cost} units; free balance {free} units, "
                           f"{committed} units already promised to bids awaiting relay")

    appended = orders.append_order(owner, spec, body.signature)
    if appended.outcome == "conflict":  # lost a race with another request for the same id
        raise APIError(409, "ClientOrderIdReused",
                       f"client_order_id {spec.client_order_id} of {owner} is taken by a different order")
    return appended.response


def _order_public(owner: str, client_order_id: int, orders: OrderLogDep, index: IndexDep) -> OrderPublic:
    logged = orders.order(owner, client_order_id)
    row = index.execute("SELECT o.*, b.hash AS placed_hash FROM orders o LEFT JOIN blocks b ON b.number = o.placed_block"
                        " WHERE o.owner = ? AND o.client_order_id = ?", (owner, str(client_order_id))).fetchone()
    if logged is None and row is None:
        raise APIError(404, "UnknownOrder", f"no order {client_order_id} of {owner}")
    if logged is not None:
        spec = json.loads(logged["spec"])
    else:
        spec = {"interval": row["interval"], "side": row["side"], "quantity_wh": row["quantity_wh"],
                "price_ticks": row["price_ticks"], "zone": row["zone"], "source": row["source"],
                "renewable_only": None if row["renewable_only"] is None else bool(row["renewable_only"])}
    cancel = orders.cancel(owner, client_order_id)
    return OrderPublic(
        owner=owner, client_order_id=client_order_id, interval=spec["interval"], side=spec["side"],
        quantity_wh=spec["quantity_wh"], price_ticks=spec["price_ticks"], zone=spec["zone"], source=spec.get("source"),
        renewable_only=spec.get("renewable_only"),
        relay_status=logged["status"] if logged is not None else None,
        relay_error=logged["error"] if logged is not None and logged["status"] == "rejected" else None,
        order_id=row["order_id"] if row is not None else (logged["order_id"] if logged is not None else None),
        status=row["status"] if row is not None else None,
        filled_wh=row["filled_wh"] if row is not None else None,
        block_number=row["placed_block"] if row is not None else (logged["block_number"] if logged else None),
        block_hash=row["placed_block_hash"] if row is not None else (logged["block_hash"] if logged else None),
        cancel_status=cancel["status"] if cancel is not None else None,
        cancel_error=cancel["error"] if cancel is not None and cancel["status"] == "rejected" else None,
    )


@router.get("/{owner}/{client_order_id}", operation_id="get_order", response_model=OrderPublic, responses=_ERRORS)
def get_order(owner: str, client_order_id: int, orders: OrderLogDep, index: IndexDep) -> OrderPublic:
    """Where an order is: in the relay log (pending, submitted, rejected with the chain's
    reason) and on chain (open, cancelled, cleared with its fill)."""
    owner, _ = _owner(owner)
    return _order_public(owner, client_order_id, orders, index)


@router.delete("/{owner}/{client_order_id}", operation_id="cancel_order", status_code=status.HTTP_202_ACCEPTED,
               response_model=OrderAccepted, responses=_ERRORS)
def cancel_order(owner: str, client_order_id: int, body: CancelCreate, chain: ChainDep, orders: OrderLogDep,
                 index: IndexDep, settings: SettingsDep) -> dict:
    """Cancel an order before its gate closes, with the owner's signature over the cancel
    message. 202 once logged; repeating it gets the same answer."""
    owner, owner_raw = _owner(owner)
    if not 0 <= client_order_id < 2**64:
        raise APIError(422, "InvalidRequest", "client_order_id must fit u64")
    if not verify_sr25519(owner_raw, cancel_message(chain.genesis_hash, owner_raw, client_order_id),
                          _signature(body.signature)):
        raise APIError(400, "BadSignature", "signature does not verify for the owner over the cancel message "
                       "(wattchain:cancel:v1 ++ genesis hash ++ owner ++ client_order_id)")
    previous = orders.cancel(owner, client_order_id)
    if previous is not None:
        return json.loads(previous["response"])
    order = _order_public(owner, client_order_id, orders, index)
    if order.relay_status == "rejected":
        raise APIError(409, "OrderNotOpen", f"the chain refused this order ({order.relay_error}); nothing to cancel")
    if order.status in ("cleared",):
        raise APIError(409, "OrderNotOpen", "the order's interval is cleared already")
    params = chain.params()
    gate = params.gate_closure(order.interval)
    if _now_ms() + settings.order_margin_ms >= gate:
        raise APIError(422, "GateClosed", f"the gate of interval {order.interval} closes at {gate} ms: too late to cancel")
    appended = orders.append_cancel(owner, client_order_id, body.signature)
    return appended.response
