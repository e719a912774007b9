"""The market's shared vocabulary: units, enums, market parameters, the signed order, cancel and
reading messages, keys and signatures, the clock and the clearing house's accounting.

Every other package may import this one; it imports nothing of ours (docs/architecture.md).
"""

from .accounts import SS58_FORMAT, dev_keypair, keypair, public_key, ss58, verify_sr25519
from .clock import interval_clock, now_ms
from .enums import MECHANISMS, SIDES, SOURCES, from_chain_name, to_chain_name
from .messages import (
    CANCEL_TAG,
    LOGIN_TAG,
    ORDER_TAG,
    READING_TAG,
    SignedCancel,
    SignedOrder,
    cancel_message,
    login_message,
    order_message,
    reading_message,
    sign_cancel,
    sign_order,
    verify_cancel,
    verify_order,
)
from .params import MarketParams
from .specs import OrderSpec
from .units import U16_MAX, U32_MAX, U64_MAX, UNITS_PER_BRL, UNITS_PER_TICK, units_to_brl

__all__ = [
    "CANCEL_TAG",
    "LOGIN_TAG",
    "MECHANISMS",
    "MarketParams",
    "ORDER_TAG",
    "OrderSpec",
    "READING_TAG",
    "SIDES",
    "SOURCES",
    "SS58_FORMAT",
    "SignedCancel",
    "SignedOrder",
    "U16_MAX",
    "U32_MAX",
    "U64_MAX",
    "UNITS_PER_BRL",
    "UNITS_PER_TICK",
    "cancel_message",
    "dev_keypair",
    "from_chain_name",
    "interval_clock",
    "keypair",
    "login_message",
    "now_ms",
    "order_message",
    "public_key",
    "reading_message",
    "sign_cancel",
    "sign_order",
    "ss58",
    "to_chain_name",
    "units_to_brl",
    "verify_cancel",
    "verify_order",
    "verify_sr25519",
]
