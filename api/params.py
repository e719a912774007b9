"""Request parameters: their bounds and formats, checked before anything decodes or stores them.

- Integers in paths and queries are bounded by what the chain and the stores can hold: SQLite
  integers are signed 64-bit, so intervals and event ids stop at 2^63 - 1 (an interval that far
  is billions of years away), zones are u16, client order ids u64 (stored as text). Out of range
  is FastAPI's 422 InvalidRequest, naming the parameter.
- An account (an order's owner, a participant, a meter's owner) is an SS58 address (46 to 50
  base58 characters) or 0x and 64 hex digits. Its length and characters are checked before it
  is decoded (base58 decoding is quadratic in the length); anything else is 400 InvalidAccount
  naming the field."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path, Query

from market import U16_MAX, U64_MAX, public_key, ss58

from .errors import APIError
from .models import ACCOUNT_MAX_LENGTH, ACCOUNT_PATTERN, ACCOUNT_SCHEMA

I64_MAX = 2**63 - 1

_ACCOUNT = re.compile(ACCOUNT_PATTERN[1:-1])  # used with fullmatch ($ would allow a "\n")
ACCOUNT_DESCRIPTION = "SS58 address (or 0x + 32-byte public key in hex)"


def account_key(value: str, field: str) -> tuple[str, bytes]:
    """(SS58 address, public key) of an account given either way; 400 InvalidAccount naming
    `field` otherwise. The format is checked before the address is decoded."""
    if len(value) > ACCOUNT_MAX_LENGTH or not _ACCOUNT.fullmatch(value):
        shown = value if len(value) <= ACCOUNT_MAX_LENGTH else value[:20] + "..."
        raise APIError(
            400,
            "InvalidAccount",
            f"{field} {shown!r} is not an SS58 address or 0x + 32-byte public key "
            f"({len(value)} characters)",
            field=field,
        )
    try:
        raw = public_key(value)
    except (ValueError, TypeError):
        raise APIError(
            400,
            "InvalidAccount",
            f"{field} {value!r} is not an SS58 address or 0x + 32-byte public key",
            field=field,
        ) from None
    return ss58(raw), raw


AccountPath = Annotated[
    str, Path(description=ACCOUNT_DESCRIPTION, json_schema_extra=ACCOUNT_SCHEMA)
]
AccountQuery = Annotated[
    str | None, Query(description=ACCOUNT_DESCRIPTION, json_schema_extra=ACCOUNT_SCHEMA)
]
IntervalPath = Annotated[int, Path(ge=0, le=I64_MAX, description="Interval number")]
IntervalQuery = Annotated[int, Query(ge=0, le=I64_MAX, description="Interval number")]
IntervalFilter = Annotated[int | None, Query(ge=0, le=I64_MAX, description="Only this interval")]
ClientOrderIdPath = Annotated[int, Path(ge=0, le=U64_MAX, description="The owner's order id")]
ZoneQuery = Annotated[int | None, Query(ge=0, le=U16_MAX, description="Only this grid zone")]

__all__ = [
    "ACCOUNT_MAX_LENGTH",
    "ACCOUNT_PATTERN",
    "I64_MAX",
    "U16_MAX",
    "U64_MAX",
    "AccountPath",
    "AccountQuery",
    "ClientOrderIdPath",
    "IntervalFilter",
    "IntervalPath",
    "IntervalQuery",
    "ZoneQuery",
    "account_key",
]
