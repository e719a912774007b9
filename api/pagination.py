"""Opaque cursors: the sort key of the last item served, base64url JSON. The next page starts
strictly after it, so inserts between pages neither repeat nor skip what was already seen."""

from __future__ import annotations

import base64
import json

from .errors import APIError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 512  # an issued cursor is a few dozen characters


def encode_cursor(key: list) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
    )


def decode_cursor(cursor: str | None, length: int, kind: type = int) -> list | None:
    """The key a cursor carries: `length` values of `kind` (integers within SQLite's signed
    64 bits, or short strings). 400 BadCursor for anything else, checked before it reaches a
    query: a cursor is untrusted input."""
    if not cursor:
        return None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise APIError(400, "BadCursor", "cursor is not one this API issued (too long)")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError):
        raise APIError(400, "BadCursor", "cursor is not one this API issued") from None
    if not isinstance(key, list) or len(key) != length or not all(map(_fits(kind), key)):
        raise APIError(400, "BadCursor", "cursor does not belong to this listing")
    return key


def _fits(kind: type):
    if kind is int:
        return lambda v: type(v) is int and -(2**63) <= v < 2**63
    return lambda v: type(v) is str and len(v) <= MAX_CURSOR_LENGTH


def page(rows: list, limit: int, key_of) -> tuple[list, str | None]:
    """rows were fetched with LIMIT limit + 1: the extra row says whether a next page exists."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(key_of(rows[-1]))
    return rows, None


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "decode_cursor", "encode_cursor", "page"]
