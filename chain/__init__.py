"""WattChain's client of its node: the one wrapper around substrate-interface.

- `connection`: connect with retry, reconnect, JSON-RPC, blocks, events, storage by name;
- `events`: a block's `System.Events` decoded by functions compiled from the metadata;
- `reads`: the EnergyTrading pallet's storage as plain Python;
- `transactions`: nonces, signing, submission, receipts (`Chain` is the whole client);
- `errors`: `ChainError` (named after the pallet's error) and `ChainUnavailable`;
- `onboarding`: the operator's registration of participants and meters.
"""

from .connection import DEFAULT_URL, PALLET, Block, Event, settle_heap
from .errors import ChainError, ChainUnavailable
from .onboarding import Newcomer, onboard
from .reads import Balance, ChainClearing, ChainMatch, ChainOrder, GridLine, order_place
from .transactions import (
    Chain,
    PendingTx,
    Receipt,
    ReceiptWatcher,
    relayed_cancels_args,
    relayed_orders_args,
)

__all__ = [
    "Balance",
    "Block",
    "Chain",
    "ChainClearing",
    "ChainError",
    "ChainMatch",
    "ChainOrder",
    "ChainUnavailable",
    "DEFAULT_URL",
    "Event",
    "GridLine",
    "Newcomer",
    "PALLET",
    "PendingTx",
    "Receipt",
    "ReceiptWatcher",
    "onboard",
    "order_place",
    "relayed_cancels_args",
    "relayed_orders_args",
    "settle_heap",
]
