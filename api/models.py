"""Request and response models, split by role (OrderCreate in, OrderAccepted / OrderPublic
out). Integers are strict: 1.5 or "15" is not a quantity. Money is in chain units (1/1000
tick) with a `_brl` string beside it; energy is in Wh; prices in ticks per kWh."""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from market import MarketParams

U64 = Annotated[int, Field(strict=True, ge=0, le=2**64 - 1)]
U16 = Annotated[int, Field(strict=True, ge=0, le=2**16 - 1)]
Hex64 = Annotated[
    str, Field(pattern=r"^0x[0-9a-fA-F]{128}$", description="sr25519 signature, 0x + 64 bytes hex")
]

# An account: an SS58 address (46 to 50 base58 characters) or 0x + a 32-byte key in hex.
# Documented in the schema, enforced (before any decoding) by api/params.py's account_key.
ACCOUNT_MAX_LENGTH = 66
ACCOUNT_PATTERN = r"^(0x[0-9a-fA-F]{64}|[1-9A-HJ-NP-Za-km-z]{46,50})$"
ACCOUNT_SCHEMA: dict[str, Any] = {"pattern": ACCOUNT_PATTERN, "maxLength": ACCOUNT_MAX_LENGTH}

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorPublic(BaseModel):
    error: str = Field(
        description="Machine-readable reason; the pallet's error name where one applies"
    )
    detail: str
    errors: list[dict[str, Any]] | None = None


class OrderCreate(Strict):
    """An order signed by its owner over the bytes of docs/chain-interface.md."""

    owner: str = Field(
        description="SS58 address (or 0x public key) of the order's owner",
        json_schema_extra=ACCOUNT_SCHEMA,
    )
    client_order_id: U64 = Field(description="Unique per owner; the idempotency key")
    interval: U64
    side: Literal["bid", "offer"]
    quantity_wh: U64
    price_ticks: U64 = Field(description="Limit price, ticks per kWh")
    zone: U16 = 0
    source: Literal["solar", "wind", "hydro", "biomass", "grid_mix"] = "grid_mix"
    renewable_only: bool = False
    signature: Hex64


# One order of a batch. Each is checked on its own (OrderCreate, as if POSTed alone), so that a
# malformed order refuses only itself: the schema says OrderCreate, the request takes any JSON.
BatchItem = Annotated[Any, WithJsonSchema({"$ref": "#/components/schemas/OrderCreate"})]


class OrderBatchCreate(Strict):
    """Signed orders to place at once (POST /orders/batch), of any owners."""

    orders: list[BatchItem] = Field(
        min_length=1,
        description="Up to `max_batch_orders` (default 100) orders, each as the body of "
        "POST /orders",
    )


class CancelCreate(Strict):
    signature: Hex64 = Field(description="Owner's signature over the cancel message")


class OrderAccepted(BaseModel):
    status: Literal["accepted"]
    order_ref: str
    log_seq: int
    owner: str
    client_order_id: int
    interval: int | None = None
    received_ms: int


class OrderBatchResult(BaseModel):
    """What POST /orders alone would have answered for this order: its status, and its body."""

    status: int = Field(description="202 (logged, or the same order again), or a 4xx or 5xx")
    body: OrderAccepted | ErrorPublic = Field(
        description="OrderAccepted for a 202, else the error shape (`error` names the reason)"
    )


class OrderBatchPublic(BaseModel):
    """One result per order of the batch, in the batch's order."""

    results: list[OrderBatchResult]


class SubmissionPublic(BaseModel):
    """An order this API logged whose content differs from the chain's order with the same owner
    and client_order_id. The chain keeps its own order; this one is refused (`relay_status`
    ends as rejected) and never trades."""

    interval: int
    side: str
    quantity_wh: int
    price_ticks: int
    zone: int
    source: str | None = None
    renewable_only: bool | None = None
    log_seq: int
    received_ms: int
    relay_status: str
    relay_error: str | None = None


class OrderPublic(BaseModel):
    """The order with this owner and client_order_id. Its content is the chain's once the chain
    has it; the relay fields describe the API's submission of that same order. A submission
    with other content is a different order and is shown apart, in `conflicting_submission`."""

    owner: str
    client_order_id: int
    interval: int
    side: str
    quantity_wh: int
    price_ticks: int
    zone: int
    source: str | None = None
    renewable_only: bool | None = None
    relay_status: str | None = Field(
        None, description="pending | submitted | onchain | rejected (None: placed elsewhere)"
    )
    relay_error: str | None = None
    order_id: int | None = Field(None, description="The chain's order id, once on chain")
    status: str | None = Field(None, description="On chain: open | cancelled | cleared | voided")
    filled_wh: int | None = None
    block_number: int | None = None
    block_hash: str | None = None
    cancel_status: str | None = None
    cancel_error: str | None = None
    conflicting_submission: SubmissionPublic | None = Field(
        None,
        description="The API's submission with this id but other content than the chain's "
        "order (placed elsewhere first): refused by the chain, it never trades",
    )


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class BookOrder(BaseModel):
    order_id: int
    owner: str
    client_order_id: int
    interval: int
    side: str
    quantity_wh: int
    price_ticks: int
    zone: int
    source: str | None
    renewable_only: bool | None
    status: str
    filled_wh: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> BookOrder:
        """From a row of index.db's `orders` (client order ids are stored as text, flags as
        0/1)."""
        return cls(
            order_id=row["order_id"],
            owner=row["owner"],
            client_order_id=int(row["client_order_id"]),
            interval=row["interval"],
            side=row["side"],
            quantity_wh=row["quantity_wh"],
            price_ticks=row["price_ticks"],
            zone=row["zone"],
            source=row["source"],
            renewable_only=None if row["renewable_only"] is None else bool(row["renewable_only"]),
            status=row["status"],
            filled_wh=row["filled_wh"],
        )


class BookLevel(BaseModel):
    price_ticks: int
    quantity_wh: int
    orders: int


class BookPublic(BaseModel):
    interval: int
    zone: int | None
    gate_closure_ms: int
    state: Literal["open", "closed", "cleared", "voided"]
    bids: list[BookLevel]
    offers: list[BookLevel]
    items: list[BookOrder]
    next_cursor: str | None = None


class MatchPublic(BaseModel):
    bid: int
    offer: int
    buyer: str
    seller: str
    quantity_wh: int
    buyer_price: int
    seller_price: int


class ZonePricePublic(BaseModel):
    zone: int
    price: int


class FlowPublic(BaseModel):
    from_zone: int = Field(description="The sellers' zone")
    to_zone: int = Field(description="The buyers' zone (the same zone for local trade)")
    quantity_wh: int


class ClearingPublic(BaseModel):
    interval: int
    mechanism: str
    price: int | None = Field(description="The uniform price (None for other mechanisms)")
    zone_prices: list[ZonePricePublic]
    volume_wh: int
    match_count: int
    grid_fees_paid: int
    block_number: int
    block_hash: str
    extrinsic_index: int | None
    timestamp_ms: int | None
    matches: list[MatchPublic] | None = None
    flows: list[FlowPublic] | None = Field(
        None, description="Energy moved between zones (with the matches only)"
    )


class IntervalProgressPublic(BaseModel):
    interval: int
    start_ms: int
    gate_closure_ms: int
    state: Literal[
        "open", "empty", "closed", "verifying", "rejected", "cleared", "voided", "settled"
    ] = Field(
        description="open for orders; empty (gate passed without orders: nothing to clear); "
        "closed (gate passed, no clearing yet); verifying (a clearing sent in pages is "
        "registered and `verified_pages` of its `pages` passed the chain's checks); rejected "
        "(the chain refused the latest clearing, in `rejected_page`; it may retry until the "
        "interval ends); "
        "cleared; voided (no valid clearing by the interval's end, every hold released); "
        "settled (after metering)"
    )
    orders: int = Field(description="Orders of the interval on chain (finalized)")
    mechanism: str | None = None
    price: int | None = Field(None, description="The uniform price, when cleared uniform")
    volume_wh: int | None = None
    match_count: int | None = None
    block_number: int | None = Field(None, description="Block of the clearing or the voiding")
    error: str | None = Field(None, description="Why the latest clearing was rejected")
    pages: int | None = Field(None, description="Pages of the latest registered clearing")
    verified_pages: int | None = Field(None, description="Of them, verified by the chain so far")
    rejected_page: int | None = Field(None, description="The page the chain rejected it in")


class PositionPublic(BaseModel):
    interval: int
    bought_wh: int
    sold_wh: int
    net_wh: int
    paid: int
    received: int
    paid_brl: str
    received_brl: str


class SettlementPublic(BaseModel):
    interval: int
    account: str
    contracted_wh: int
    metered_wh: int
    imbalance_wh: int
    amount: int = Field(description="Units paid (>0) or received (<0) for the imbalance")
    amount_brl: str
    estimated: bool = Field(
        description="metered_wh is an estimate: a meter had not reported by the reading deadline,"
        " so the position counts as delivered or consumed as contracted"
    )
    trued_up_wh: int = Field(
        description="Energy of earlier estimates and late readings taken into metered_wh"
    )
    proceeds: int = Field(
        description="Units the energy sold in the interval earned, held by the clearing house"
        " until settlement; any shortfall's cost was taken from them first"
    )
    proceeds_brl: str
    block_number: int
    block_hash: str


class BalancesPublic(BaseModel):
    account: str
    free: int
    held: int = Field(description="Reserved, including bid holds")
    free_brl: str
    held_brl: str
    energy_wh: int = Field(description="Energy tokens in Wh (1000 Wh = 1 token = 1 kWh)")
    pending_bid_hold: int = Field(
        description="Units the account's bids still in the relay log will hold"
    )
    awaiting_settlement: int = Field(
        description="Units the account's sales in cleared intervals earned, which the clearing"
        " house pays out at their settlement, after the delivery is metered"
    )
    awaiting_settlement_brl: str


class ParticipantPublic(BaseModel):
    account: str
    zone: int | None
    registered: bool
    meters: list[str]


class MeterPublic(BaseModel):
    meter: str
    owner: str
    zone: int
    source: str
    revoked: bool
    block_number: int | None


class ReadingPublic(BaseModel):
    meter: str
    counter: int
    interval: int
    owner: str | None
    kind: str
    import_wh: int
    export_wh: int
    block_number: int
    block_hash: str


class MarketPublic(BaseModel):
    genesis_hash: str
    params: MarketParams = Field(
        description="The parameters of the intervals whose gate is still open (the chain's "
        "latest set); each interval keeps the set its gate closed under"
    )
    now_ms: int
    current_interval: int
    next_open_interval: int
    next_gate_closure_ms: int
    order_margin_ms: int
    max_intervals_ahead: int
    best_block: int | None = None
    finalized_block: int | None = None
    indexed_block: int | None = None
    distributor: str | None = None
    operator: str | None = Field(None, description="The market operator's account")
    node_rpc_url: str = Field(
        description="The node's WebSocket RPC, where the operator console sends the chain "
        "actions it signs in the browser"
    )
    timezone: str = Field(
        description="The market's time zone (IANA): intervals are shown in its clock time"
    )
    node_reachable: bool = Field(
        True, description="False while the API cannot read the node (it reconnects by itself)"
    )
    stale: bool = Field(
        False,
        description="True when the chain's values here (params, blocks) are the last ones the "
        "API read, not a read just now: the node did not answer in time",
    )


class HealthPublic(BaseModel):
    status: str = Field(description="`ok` while the API serves")
    node_reachable: bool = Field(
        description="Whether the API reads the node now; while false it serves the last values "
        "it read and reconnects in the background"
    )
    node_last_seen_ms: int | None = Field(
        None, description="When the API last read the node (unix ms); null: never yet"
    )


class AlertPublic(BaseModel):
    id: int
    at_ms: int
    source: str
    interval: int | None
    name: str
    detail: str
    acked_ms: int | None = Field(None, description="When the operator acknowledged it")
    acked_by: str | None = Field(None, description="The operator's account that did")


class ChallengePublic(BaseModel):
    challenge: str = Field(description="0x + 32 bytes hex: sign it in market.login_message")
    expires_ms: int


class SessionCreate(Strict):
    """A login: the account's signature over market.login_message with a challenge of
    POST /session/challenge (docs/web.md)."""

    account: str = Field(json_schema_extra=ACCOUNT_SCHEMA)
    challenge: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    signature: Hex64


class SessionPublic(BaseModel):
    token: str = Field(description="Send as Authorization: Bearer <token>")
    account: str
    roles: list[Literal["operator", "distributor", "participant"]]
    expires_ms: int


__all__ = [name for name in dir() if name[0].isupper()]
