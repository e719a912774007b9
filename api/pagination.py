"""Opaque cursors: the sort key of the last item served, base64url JSON. The next page starts
strictly after it, so inserts between pages neither repeat nor skip what was already seen."""

from __future__ import annotations

import base64
import json

from .errors import APIError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(key: list) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
    )


def decode_cursor(cursor: str | None, length: int) -> list | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError):
        raise APIError(400, "BadCursor", "cursor is not one this API issued") from None
    if not isinstance(key, list) or len(key) != length:
        raise APIError(400, "BadCursor", "cursor does not belong to this listing")
    return key


def page(rows: list, limit: int, key_of) -> tuple[list, str | None]:
    """rows were fetched with LIMIT limit + 1: the extra row says whether a next page exists."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(key_of(rows[-1]))
    return rows, None


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "decode_cursor", "encode_cursor", "page"]
