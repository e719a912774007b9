"""The wall clock in the market's unit: unix milliseconds, as the chain's `Timestamp.Now`."""
from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
