"""Each API test places its orders in one interval, fixed when the test begins."""

from __future__ import annotations

import pytest
import test_api_offline


@pytest.fixture(autouse=True)
def one_open_interval_per_test(monkeypatch):
    # The tests take at most ~14 s; the pinned gate is at least 26 s away.
    monkeypatch.setattr(test_api_offline, "PINNED_INTERVAL", test_api_offline.open_interval())
