"""Intervals as people read them: clock times in the market's time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from market import interval_clock
from market.settings import Settings


def test_intervals_read_as_clock_times_in_the_markets_time_zone():
    start = int(datetime(2026, 12, 1, 17, 15, tzinfo=UTC).timestamp() * 1000)  # 14:15 in São Paulo
    assert interval_clock(start // 900_000, 900_000, "America/Sao_Paulo") == "14:15–14:30"
    assert interval_clock(start // 20_000, 20_000, "America/Sao_Paulo") == "14:15:00–14:15:20"
    assert interval_clock(start // 900_000, 900_000, "UTC") == "17:15–17:30"
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings.from_env(timezone="America/Sao_Paolo")


def test_a_span_of_intervals_runs_from_the_first_start_to_the_last_end():
    start = int(datetime(2026, 12, 1, 17, 15, tzinfo=UTC).timestamp() * 1000)
    k = start // 900_000
    assert interval_clock(k, 900_000, "America/Sao_Paulo", through=k + 3) == "14:15–15:15"
