"""Order intake: the checks an order or a cancel passes before the API logs it for relay.

They are what the chain would check (signature, registration, zone, bounds, gate closure, funds
for a bid), so that a bad order is refused now with a 4xx naming the reason, and an order is
acknowledged only once it is in the write-ahead log on disk. The routes (api/routes/orders.py)
only translate HTTP to these calls.

An order passes two stages: `verify_order` (its form and signature: no store, no lock) and
`admit_order` (against the log, the index and the chain's state, then appended). POST /orders
runs both for one order; POST /orders/batch (`place_orders`) verifies every order first, then
admits them one after the other as one write of the log's group commit (`OrderLog.together`),
so each order is judged as if POSTed alone after the ones before it, and the group's one fsync
makes all the accepted ones durable."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from chain import Balance, ChainUnavailable
from market import (
    SIDES,
    MarketParams,
    OrderSpec,
    cancel_message,
    now_ms,
    order_message,
    verify_sr25519,
)
from market.settings import Settings
from store import OrderLog, queries, spec_json
from store.queries import client_order_id_used, order_on_chain

from . import metrics
from .backpressure import RelayQueue
from .chainview import ChainView
from .errors import APIError, error_answer, error_body, invalid_request_body
from .models import (
    CancelCreate,
    ErrorPublic,
    OrderAccepted,
    OrderBatchResult,
    OrderCreate,
    OrderPublic,
    SubmissionPublic,
)
from .params import account_key
from .ratelimit import RateLimits

log = logging.getLogger(__name__)


def owner_key(value: str) -> tuple[str, bytes]:
    """(SS58 address, public key) of an owner given either way; 400 InvalidAccount otherwise
    (its format checked before it is decoded)."""
    return account_key(value, "owner")


def _signature(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text[2:])


@dataclass(frozen=True)
class Guards:
    """What keeps intake within what the market can take: the relay backlog (503 RelayBacklog)
    and the rate limits (429 RateLimited)."""

    relay: RelayQueue
    rates: RateLimits


@dataclass(frozen=True)
class VerifiedOrder:
    """An order whose owner, content and signature are checked."""

    owner: str
    spec: OrderSpec
    signature: str


def place_order(
    body: OrderCreate,
    chain: ChainView,
    orders: OrderLog,
    guards: Guards,
    index: sqlite3.Connection,
    settings: Settings,
) -> dict[str, Any]:
    """Check a signed order and log it; the answer of its 202 (the first answer again for the
    same order sent twice). Raises APIError naming the reason."""
    return admit_order(verified(body, chain, guards), chain, orders, guards, index, settings)


def place_orders(
    items: list[Any],
    chain: ChainView,
    orders: OrderLog,
    guards: Guards,
    index: sqlite3.Connection,
    settings: Settings,
) -> list[OrderBatchResult]:
    """A batch: each item (JSON, not yet validated) gets what POST /orders would answer for it
    alone, sent after the items before it; the accepted ones are logged with one commit, which
    has returned before this does. Raises APIError only for the batch as a whole (too many)."""
    if len(items) > settings.max_batch_orders:
        raise APIError(
            422,
            "BatchTooLarge",
            f"{len(items)} orders in one batch; at most {settings.max_batch_orders} "
            "(max_batch_orders)",
            field="orders",
        )
    # Form and signatures first, outside the log's write lock: they read no store.
    answers = [_verified_or_refused(item, chain, guards) for item in items]
    admit = [i for i, answer in enumerate(answers) if isinstance(answer, VerifiedOrder)]
    for i, outcome in zip(
        admit, admit_together([answers[i] for i in admit], chain, orders, guards, index, settings)
    ):
        answers[i] = (outcome, 202) if isinstance(outcome, dict) else refusal(outcome)
    # The group has committed: every 202 below is on disk.
    for body, status in answers:
        if status == 202:
            metrics.order_accepted()
        else:
            metrics.order_refused(body["error"])
    return [
        OrderBatchResult(
            status=status,
            body=OrderAccepted(**body) if status == 202 else ErrorPublic(**body),
        )
        for body, status in answers
    ]


def admit_together(
    batch: list[VerifiedOrder],
    chain: ChainView,
    orders: OrderLog,
    guards: Guards,
    index: sqlite3.Connection,
    settings: Settings,
) -> list[dict[str, Any] | Exception]:
    """`admit_order` for each verified order, one after the other, as one write of the log's
    group commit: each is judged as if POSTed alone after the ones before it, and one commit
    makes the accepted ones durable (it has returned before this does). Each gets the answer of
    its 202 or the exception that refuses it, which refuses only that order."""
    outcomes: list[dict[str, Any] | Exception] = []
    if not batch:
        return outcomes
    # What the orders need of the node, asked before the log's write lock: asked inside it, a
    # read the chain view had to fetch held the log from the process's other requests.
    known = ChainAnswers(chain, batch, orders)

    def admit_all() -> None:
        for order in batch:
            try:
                outcomes.append(admit_order(order, known, orders, guards, index, settings))
            except Exception as exc:  # an order's own refusal (or fault) is its answer alone
                outcomes.append(exc)

    orders.together(admit_all)
    return outcomes


def refusal(exc: Exception) -> tuple[dict, int]:
    """(body, status) of an order refused by `exc`: its 4xx or 503, or 500 InternalError for a
    fault of the API (logged with its traceback)."""
    if isinstance(exc, APIError | ChainUnavailable):
        return error_answer(exc)
    log.error("order intake failed", exc_info=exc)
    return error_body("InternalError", "the API failed on this order"), 500


class ChainAnswers:
    """What `admit_order` asks the chain view about a batch's orders, asked before the log's
    write lock is taken. A bid's balance is read fresh when the cached one does not cover the
    owner's bids of the batch and those awaiting relay, as `admit_order` would read it. A read
    that fails is raised again for the orders that need it (each is refused alone)."""

    def __init__(self, chain: ChainView, batch: list[VerifiedOrder], orders: OrderLog):
        self.genesis_hash = chain.genesis_hash
        self.block_ms = chain.block_ms
        self.max_intervals_ahead = chain.max_intervals_ahead
        self._answers: dict[tuple, Any] = {}
        self._ask(("params",), chain.params)
        bids: dict[str, int] = {}
        for order in batch:
            owner, spec = order.owner, order.spec
            self._ask(("zone", owner), chain.zone_of, owner)
            source = spec.source
            if spec.side == "offer" and source != "grid_mix":
                self._ask(("meters", owner, source), chain.meters_of_source, owner, source)
            if spec.side == "bid":
                bids[owner] = bids.get(owner, 0) + spec.price_ticks * spec.quantity_wh
        for owner, cost in bids.items():
            balance = self._ask(("balance", owner), chain.balance, owner)
            if balance is None or cost + orders.unsettled_bid_cost(owner) > balance.free:
                self._ask(("balance", owner), chain.balance, owner, fresh=True)

    def _ask(self, key: tuple, read: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            self._answers[key] = answer = read(*args, **kwargs)
        except ChainUnavailable as exc:
            self._answers[key], answer = exc, None
        return answer

    def _answer(self, *key: Any) -> Any:
        answer = self._answers[key]
        if isinstance(answer, ChainUnavailable):
            raise answer
        return answer

    def params(self) -> MarketParams:
        return self._answer("params")

    def zone_of(self, account: str) -> int | None:
        return self._answer("zone", account)

    def meters_of_source(self, account: str, source: str) -> int:
        return self._answer("meters", account, source)

    def balance(self, account: str, *, fresh: bool = False) -> Balance:
        return self._answer("balance", account)


def _verified_or_refused(
    item: Any, chain: ChainView, guards: Guards
) -> VerifiedOrder | tuple[dict, int]:
    """One item of a batch verified (and counted against its owner's rate), or the (body,
    status) of its refusal."""
    try:
        return verified(OrderCreate.model_validate(item), chain, guards)
    except ValidationError as exc:
        return invalid_request_body(exc.errors()), 422
    except (APIError, ChainUnavailable) as exc:
        return error_answer(exc)


def verified(body: OrderCreate, chain: ChainView, guards: Guards) -> VerifiedOrder:
    """verify_order, then the owner's rate limit (429): only an order its owner signed counts
    against the owner."""
    order = verify_order(body, chain)
    guards.rates.take_order(order.owner)
    return order


def verify_order(body: OrderCreate, chain: ChainView) -> VerifiedOrder:
    """The checks that need no store: the owner's form, the content's bounds, the signature.
    Raises APIError naming the reason."""
    owner, owner_raw = owner_key(body.owner)
    try:
        spec = OrderSpec(
            body.client_order_id,
            body.interval,
            body.side,
            body.quantity_wh,
            body.price_ticks,
            body.zone,
            body.source,
            body.renewable_only,
        )
    except ValueError as exc:
        raise APIError(422, "InvalidRequest", str(exc)) from None
    if not verify_sr25519(
        owner_raw, order_message(chain.genesis_hash, owner_raw, spec), _signature(body.signature)
    ):
        raise APIError(
            400,
            "BadSignature",
            "signature does not verify for the owner over the order message "
            "(wattchain:order:v1 ++ genesis hash ++ owner ++ OrderSpec)",
        )
    return VerifiedOrder(owner, spec, body.signature)


def admit_order(
    order: VerifiedOrder,
    chain: ChainView | ChainAnswers,
    orders: OrderLog,
    guards: Guards,
    index: sqlite3.Connection,
    settings: Settings,
) -> dict[str, Any]:
    """The checks against the log, the index and the chain's state, then the append; the answer
    of its 202 (the first answer again for the same order). Raises APIError naming the reason.
    In a group commit the answer holds once the group has committed."""
    owner, spec = order.owner, order.spec
    existing = orders.order(owner, spec.client_order_id)
    if existing is not None:
        if existing["spec"] == spec_json(spec):
            return json.loads(existing["response"])
        raise APIError(
            409,
            "ClientOrderIdReused",
            f"client_order_id {spec.client_order_id} of {owner} is taken by a different order",
        )
    if client_order_id_used(index, owner, spec.client_order_id):
        raise APIError(
            409,
            "ClientOrderIdReused",
            f"client_order_id {spec.client_order_id} of {owner} is already used on chain",
        )

    zone = chain.zone_of(owner)
    if zone is None:
        raise APIError(403, "NotRegistered", f"{owner} is not a registered participant")
    if zone != spec.zone:
        raise APIError(
            422, "WrongZone", f"{owner} trades in zone {zone}, the order says zone {spec.zone}"
        )
    params = chain.params()
    if spec.quantity_wh == 0:
        raise APIError(422, "ZeroQuantity", "quantity_wh must be positive")
    if spec.quantity_wh > params.max_quantity_wh:
        raise APIError(
            422,
            "QuantityTooLarge",
            f"quantity_wh {spec.quantity_wh} is above the market's maximum "
            f"{params.max_quantity_wh}",
        )
    if not params.min_price_ticks <= spec.price_ticks <= params.max_price_ticks:
        raise APIError(
            422,
            "PriceOutOfBounds",
            f"price_ticks {spec.price_ticks} is outside "
            f"[{params.min_price_ticks}, {params.max_price_ticks}]",
        )
    if spec.side == "offer" and spec.renewable_only:
        raise APIError(
            422, "InvalidEnergyConstraint", "renewable_only is for bids; an offer states its source"
        )
    # An interval whose gate is open is governed by the latest parameters.
    if spec.renewable_only and params.mechanism == "uniform":
        raise APIError(
            422,
            "RenewableOnlyUnderUniform",
            "renewable_only bids need the pay-as-bid or zonal mechanism; this market clears at "
            "one uniform price, which cannot keep renewable energy apart",
        )
    if (
        spec.side == "offer"
        and spec.source != "grid_mix"
        and chain.meters_of_source(owner, spec.source) == 0
    ):
        raise APIError(
            422,
            "SourceNotMetered",
            f"a {spec.source} offer needs an accredited meter of {owner} that measures "
            f"{spec.source}; it has none (a grid_mix offer claims no source and needs none)",
        )
    now = now_ms()
    gate = params.gate_closure(spec.interval)
    if now + settings.order_margin_ms >= gate:
        raise APIError(
            422,
            "GateClosed",
            f"orders for interval {spec.interval} closed at {gate} ms (unix); this API "
            f"stops taking them {settings.order_margin_ms} ms earlier so they reach a block in "
            "time; next open interval: "
            f"{params.first_open_interval(now, settings.order_margin_ms)}",
        )
    current = params.interval_at(now)
    if spec.interval > current + chain.max_intervals_ahead:
        raise APIError(
            422,
            "IntervalTooFarAhead",
            f"interval {spec.interval} is more than "
            f"{chain.max_intervals_ahead} intervals after the current one ({current})",
        )
    cap = settings.max_orders_per_interval
    if cap is not None and orders.interval_count(spec.interval) >= cap:
        raise APIError(
            422, "IntervalFull", f"interval {spec.interval} has its {cap} orders; try a later one"
        )
    held, sides = open_orders(owner, spec.interval, orders, index)
    other = "offer" if spec.side == "bid" else "bid"
    if sides[other]:
        raise APIError(
            409,
            "SelfTrade",
            f"{owner} has {sides[other]} open {other}s in interval {spec.interval}: a "
            "participant buys or sells in an interval, never both, so that it cannot trade "
            "with itself (cancel them first, and wait for the cancellation to reach the chain)",
        )
    cap = settings.max_open_orders_per_participant
    if cap is not None:
        count = sum(held.values())
        if count >= cap:
            raise APIError(
                409,
                "TooManyOpenOrders",
                f"{owner} holds {count} open orders in interval {spec.interval}, the most one "
                f"participant may ({cap}); cancel one or use another interval",
            )
    if spec.side == "bid":
        cost = spec.price_ticks * spec.quantity_wh
        committed = orders.unsettled_bid_cost(owner)
        free = chain.balance(owner).free
        if cost + committed > free:
            free = chain.balance(owner, fresh=True).free
        if cost + committed > free:
            raise APIError(
                422,
                "InsufficientBalance",
                f"the bid holds {cost} units; free balance {free} units, "
                f"{committed} units already promised to bids awaiting relay",
            )

    appended = guards.relay.append_in_time(
        orders,
        params,
        chain.block_ms,
        spec.interval,
        lambda not_after_ms: orders.append_order(
            owner, spec, order.signature, not_after_ms=not_after_ms
        ),
    )
    if appended.outcome == "conflict":  # lost a race with another request for the same id
        raise APIError(
            409,
            "ClientOrderIdReused",
            f"client_order_id {spec.client_order_id} of {owner} is taken by a different order",
        )
    return appended.response


def open_orders(
    owner: str, interval: int, orders: OrderLog, index: sqlite3.Connection
) -> tuple[dict[str, int], dict[str, int]]:
    """The open orders `owner` holds in `interval`, by side: those on chain (finalized, in the
    index) and those logged here that the index does not show yet. First less those being
    cancelled (what the owner holds), then less only those whose cancel has reached the chain
    (what the chain still counts on that side, `TraderSides`)."""
    on_chain = queries.open_order_count(index, owner, interval)
    logged = orders.open_unindexed(owner, interval, queries.last_indexed_block(index))
    held = {s: on_chain.get(s, 0) + logged.get(s, (0, 0))[0] for s in SIDES}
    sides = {s: on_chain.get(s, 0) + logged.get(s, (0, 0))[1] for s in SIDES}
    return held, sides


def _chain_spec(row: sqlite3.Row) -> dict[str, Any]:
    """The content of an indexed order, in the keys of a logged OrderSpec."""
    return {
        "interval": row["interval"],
        "side": row["side"],
        "quantity_wh": row["quantity_wh"],
        "price_ticks": row["price_ticks"],
        "zone": row["zone"],
        "source": row["source"],
        "renewable_only": None if row["renewable_only"] is None else bool(row["renewable_only"]),
    }


def order_public(
    owner: str, client_order_id: int, orders: OrderLog, index: sqlite3.Connection
) -> OrderPublic:
    """Where an order is: the relay log's entry and the index's order, merged when they are the
    same order. When their contents differ (the chain took another order with this id first,
    placed elsewhere), they are two orders: the answer is the chain's, and the log's entry,
    which the chain refuses, is shown apart as `conflicting_submission`."""
    logged = orders.order(owner, client_order_id)
    row = order_on_chain(index, owner, client_order_id)
    if logged is None and row is None:
        raise APIError(404, "UnknownOrder", f"no order {client_order_id} of {owner}")
    conflicting = None
    if logged is not None and row is not None:
        submitted, chain = json.loads(logged["spec"]), _chain_spec(row)
        if any(v is not None and submitted.get(k) != v for k, v in chain.items()):
            conflicting = SubmissionPublic(
                **{k: submitted[k] for k in chain},
                log_seq=logged["seq"],
                received_ms=logged["received_ms"],
                relay_status=logged["status"],
                relay_error=logged["error"],
            )
            logged = None  # not this order's entry: the chain's order came from elsewhere
    spec = json.loads(logged["spec"]) if logged is not None else _chain_spec(row)
    cancel = orders.cancel(owner, client_order_id)
    return OrderPublic(
        owner=owner,
        client_order_id=client_order_id,
        interval=spec["interval"],
        side=spec["side"],
        quantity_wh=spec["quantity_wh"],
        price_ticks=spec["price_ticks"],
        zone=spec["zone"],
        source=spec.get("source"),
        renewable_only=spec.get("renewable_only"),
        relay_status=logged["status"] if logged is not None else None,
        relay_error=logged["error"]
        if logged is not None and logged["status"] == "rejected"
        else None,
        order_id=row["order_id"]
        if row is not None
        else (logged["order_id"] if logged is not None else None),
        status=row["status"] if row is not None else None,
        filled_wh=row["filled_wh"] if row is not None else None,
        block_number=row["placed_block"]
        if row is not None
        else (logged["block_number"] if logged else None),
        block_hash=row["placed_block_hash"]
        if row is not None
        else (logged["block_hash"] if logged else None),
        cancel_status=cancel["status"] if cancel is not None else None,
        cancel_error=cancel["error"]
        if cancel is not None and cancel["status"] == "rejected"
        else None,
        conflicting_submission=conflicting,
    )


def cancel_order(
    owner: str,
    client_order_id: int,
    body: CancelCreate,
    chain: ChainView,
    orders: OrderLog,
    guards: Guards,
    index: sqlite3.Connection,
    settings: Settings,
) -> dict[str, Any]:
    """Check a signed cancel and log it; the answer of its 202. Raises APIError. A cancel that
    could not reach the chain before the order's gate is refused like an order (503)."""
    owner, owner_raw = owner_key(owner)
    if not 0 <= client_order_id < 2**64:
        raise APIError(422, "InvalidRequest", "client_order_id must fit u64")
    if not verify_sr25519(
        owner_raw,
        cancel_message(chain.genesis_hash, owner_raw, client_order_id),
        _signature(body.signature),
    ):
        raise APIError(
            400,
            "BadSignature",
            "signature does not verify for the owner over the cancel message "
            "(wattchain:cancel:v1 ++ genesis hash ++ owner ++ client_order_id)",
        )
    guards.rates.take_order(owner)
    previous = orders.cancel(owner, client_order_id)
    if previous is not None:
        return json.loads(previous["response"])
    order = order_public(owner, client_order_id, orders, index)
    if order.relay_status == "rejected":
        raise APIError(
            409,
            "OrderNotOpen",
            f"the chain refused this order ({order.relay_error}); nothing to cancel",
        )
    if order.status in ("cleared", "voided"):
        raise APIError(409, "OrderNotOpen", f"the order's interval is {order.status} already")
    params = chain.params()
    gate = params.gate_closure(order.interval)
    if now_ms() + settings.order_margin_ms >= gate:
        raise APIError(
            422,
            "GateClosed",
            f"the gate of interval {order.interval} closes at {gate} ms: too late to cancel",
        )
    return guards.relay.append_in_time(
        orders,
        params,
        chain.block_ms,
        order.interval,
        lambda not_after_ms: orders.append_cancel(
            owner, client_order_id, body.signature, not_after_ms=not_after_ms
        ),
    ).response
