"""Participants: registration and meters, orders, positions (what each interval's clearing
gave them), settlement lines, and balances (money and energy tokens, live from the chain)."""

from __future__ import annotations

from fastapi import APIRouter

from chain import ChainUnavailable
from market import units_to_brl
from store import queries

from ..deps import ChainDep, CursorQuery, IndexDep, LimitQuery, OrderLogDep
from ..errors import APIError
from ..models import (
    BalancesPublic,
    BookOrder,
    ErrorPublic,
    Page,
    ParticipantPublic,
    PositionPublic,
    SettlementPublic,
)
from ..pagination import decode_cursor, page
from ..params import AccountPath, IntervalFilter, account_key

router = APIRouter(prefix="/participants", tags=["participants"])
_ERR = {400: {"model": ErrorPublic}, 503: {"model": ErrorPublic}}


def account_param(account: str) -> str:
    """The SS58 address of a participant named in a path or query; 400 InvalidAccount."""
    return account_key(account, "account")[0]


@router.get(
    "/{account}", operation_id="get_participant", response_model=ParticipantPublic, responses=_ERR
)
def get_participant(account: AccountPath, index: IndexDep, chain: ChainDep) -> ParticipantPublic:
    account = account_param(account)
    zone = chain.zone_of(account)
    meters = queries.participant_meters(index, account)
    return ParticipantPublic(account=account, zone=zone, registered=zone is not None, meters=meters)


@router.get(
    "/{account}/orders",
    operation_id="list_participant_orders",
    response_model=Page[BookOrder],
    responses=_ERR,
)
def list_participant_orders(
    account: AccountPath,
    index: IndexDep,
    interval: IntervalFilter = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[BookOrder]:
    """The participant's orders on chain, newest first."""
    account = account_param(account)
    key = decode_cursor(cursor, 1)
    rows = queries.participant_orders(
        index,
        account,
        interval=interval,
        before=key[0] if key else queries.ABOVE_ALL,
        limit=limit + 1,
    )
    rows, nxt = page(rows, limit, lambda r: [r["order_id"]])
    return Page[BookOrder](items=[BookOrder.from_row(r) for r in rows], next_cursor=nxt)


@router.get(
    "/{account}/positions",
    operation_id="list_positions",
    response_model=Page[PositionPublic],
    responses=_ERR,
)
def list_positions(
    account: AccountPath, index: IndexDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[PositionPublic]:
    """Per cleared interval: energy bought and sold and the money paid and received for it."""
    account = account_param(account)
    key = decode_cursor(cursor, 1)
    rows = queries.positions(
        index, account, before=key[0] if key else queries.ABOVE_ALL, limit=limit + 1
    )
    rows, nxt = page(rows, limit, lambda r: [r["interval"]])
    return Page[PositionPublic](
        items=[
            PositionPublic(
                interval=r["interval"],
                bought_wh=r["bought"],
                sold_wh=r["sold"],
                net_wh=r["bought"] - r["sold"],
                paid=r["paid"],
                received=r["received"],
                paid_brl=units_to_brl(r["paid"]),
                received_brl=units_to_brl(r["received"]),
            )
            for r in rows
        ],
        next_cursor=nxt,
    )


@router.get(
    "/{account}/settlements",
    operation_id="list_settlements",
    response_model=Page[SettlementPublic],
    responses=_ERR,
)
def list_settlements(
    account: AccountPath, index: IndexDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[SettlementPublic]:
    """The participant's settlement lines, latest interval first."""
    account = account_param(account)
    key = decode_cursor(cursor, 1)
    rows = queries.settlement_lines(
        index, account, before=key[0] if key else queries.ABOVE_ALL, limit=limit + 1
    )
    rows, nxt = page(rows, limit, lambda r: [r["interval"]])
    return Page[SettlementPublic](
        items=[
            SettlementPublic(
                interval=r["interval"],
                account=r["account"],
                contracted_wh=r["contracted_wh"],
                metered_wh=r["metered_wh"],
                imbalance_wh=r["imbalance_wh"],
                amount=int(r["amount"]),
                amount_brl=units_to_brl(int(r["amount"])),
                estimated=bool(r["estimated"]),
                trued_up_wh=r["trued_up_wh"],
                proceeds=int(r["proceeds"]),
                proceeds_brl=units_to_brl(int(r["proceeds"])),
                block_number=r["block_number"],
                block_hash=r["block_hash"],
            )
            for r in rows
        ],
        next_cursor=nxt,
    )


@router.get(
    "/{account}/balances",
    operation_id="get_balances",
    response_model=BalancesPublic,
    responses=_ERR,
)
def get_balances(
    account: AccountPath, chain: ChainDep, orders: OrderLogDep, index: IndexDep
) -> BalancesPublic:
    """Money (free and held by bids) and energy tokens, read from the chain's best block, and
    what the account's sales earned that the clearing house keeps until their settlement
    (from the index)."""
    account = account_param(account)
    try:
        balance = chain.balance(account, fresh=True)
        energy = chain.energy_balance(account)
    except ChainUnavailable as exc:
        raise APIError(503, "ChainUnavailable", str(exc)) from None
    return BalancesPublic(
        account=account,
        free=balance.free,
        held=balance.reserved,
        free_brl=units_to_brl(balance.free),
        held_brl=units_to_brl(balance.reserved),
        energy_wh=energy,
        pending_bid_hold=orders.unsettled_bid_cost(account),
        awaiting_settlement=(waiting := queries.proceeds_awaiting_settlement(index, account)),
        awaiting_settlement_brl=units_to_brl(waiting),
    )
