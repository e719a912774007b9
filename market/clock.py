"""The wall clock in the market's unit (unix milliseconds, as the chain's `Timestamp.Now`), and
intervals as people read them: clock times in the market's time zone."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def interval_clock(
    interval: int, interval_ms: int, timezone: str, *, through: int | None = None
) -> str:
    """Interval `interval`'s wall-clock times in the market's time zone: `14:15–14:30`, with
    seconds when intervals are not whole minutes (`14:15:20–14:15:40` on the demo chain). With
    `through`, from the start of `interval` to the end of `through`."""
    zone = ZoneInfo(timezone)
    fmt = "%H:%M" if interval_ms % 60_000 == 0 else "%H:%M:%S"
    last = interval if through is None else through
    start, end = (
        datetime.fromtimestamp(k * interval_ms / 1000, zone) for k in (interval, last + 1)
    )
    return f"{start.strftime(fmt)}–{end.strftime(fmt)}"
