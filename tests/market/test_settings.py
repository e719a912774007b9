"""One way to configure: defaults < the operator's TOML file < WATTCHAIN_* variables < options,
and a bad value is refused with its name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from market.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "wattchain.example.toml"


def test_the_example_file_loads_and_options_win_over_variables_over_the_file(tmp_path, monkeypatch):
    assert Settings.from_env(EXAMPLE).data_dir == Path("data/market")
    config = tmp_path / "wattchain.toml"
    config.write_text('node_url = "ws://10.0.0.5:9944"\norder_margin_ms = 6000\nrelay_batch = 64\n')
    monkeypatch.setenv("WATTCHAIN_ORDER_MARGIN_MS", "5000")
    monkeypatch.setenv("WATTCHAIN_RELAY_BATCH", "32")
    settings = Settings.from_env(config, relay_batch=16, api_port=None)
    assert settings.node_url == "ws://10.0.0.5:9944"  # file
    assert settings.order_margin_ms == 5000  # variable over file
    assert settings.relay_batch == 16  # option over variable
    assert settings.api_port == 8000  # an unset option falls through to the default


def test_the_config_file_can_come_from_the_environment(tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text('timezone = "America/Manaus"\n')
    monkeypatch.setenv("WATTCHAIN_CONFIG", str(config))
    assert Settings.from_env().timezone == "America/Manaus"


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"settle_page": 1_001}, "settle_page"),
        ({"relay_batch": 0}, "relay_batch"),
        ({"nodeurl": "x"}, "nodeurl"),
    ],
)
def test_a_bad_setting_is_named(bad, name):
    with pytest.raises(ValidationError, match=name):
        Settings.from_env(**bad)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="nope.toml"):
        Settings.from_env(tmp_path / "nope.toml")
