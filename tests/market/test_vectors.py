"""The golden vectors of docs/vectors/signed-messages.json, which the pallet's tests read too
(runtime-config/pallets/energy-trading/src/tests/vectors.rs): our bytes must be the
file's bytes, and each signature must verify over them and nothing else."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from market import OrderSpec, cancel_message, order_message, reading_message, verify_sr25519
from meter_bridge import MeterReading, verify_reading

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "vectors" / "signed-messages.json").read_text()
)
GENESIS = bytes.fromhex(VECTORS["genesis_hash"][2:])


def _hex(text: str) -> bytes:
    return bytes.fromhex(text[2:])


def _verifies_exactly(key: bytes, message: bytes, signature: bytes) -> None:
    assert verify_sr25519(key, message, signature)
    flipped = bytearray(message)
    flipped[-1] ^= 1
    assert not verify_sr25519(key, bytes(flipped), signature)


def test_the_file_covers_every_message_kind():
    assert (
        len(VECTORS["orders"]) >= 4
        and len(VECTORS["cancels"]) >= 2
        and len(VECTORS["readings"]) >= 2
    )
    sides = {v["spec"]["side"] for v in VECTORS["orders"]}
    sources = {v["spec"]["source"] for v in VECTORS["orders"]}
    assert sides == {"bid", "offer"} and sources == {
        "solar",
        "wind",
        "hydro",
        "biomass",
        "grid_mix",
    }


@pytest.mark.parametrize(
    "vector", VECTORS["orders"], ids=lambda v: f"order-{v['spec']['client_order_id']}"
)
def test_order_message(vector):
    owner = _hex(vector["owner"])
    message = order_message(GENESIS, owner, OrderSpec(**vector["spec"]))
    assert message.hex() == vector["message"][2:]
    _verifies_exactly(owner, message, _hex(vector["signature"]))


@pytest.mark.parametrize(
    "vector", VECTORS["cancels"], ids=lambda v: f"cancel-{v['client_order_id']}"
)
def test_cancel_message(vector):
    owner = _hex(vector["owner"])
    message = cancel_message(GENESIS, owner, vector["client_order_id"])
    assert message.hex() == vector["message"][2:]
    _verifies_exactly(owner, message, _hex(vector["signature"]))


def test_readings_cover_the_epoch_edges():
    assert {0, 1, 2**32 - 1} <= {v["epoch"] for v in VECTORS["readings"]}
    assert set(VECTORS["readings"][0]) == {
        "meter",
        "epoch",
        "interval",
        "counter",
        "import_wh",
        "export_wh",
        "message",
        "signature",
    }


@pytest.mark.parametrize(
    "vector", VECTORS["readings"], ids=lambda v: f"reading-e{v['epoch']}-{v['interval']}"
)
def test_reading_message_and_the_meter_bridge_agree(vector):
    meter = _hex(vector["meter"])
    fields = (
        vector["epoch"],
        vector["interval"],
        vector["counter"],
        vector["import_wh"],
        vector["export_wh"],
    )
    message = reading_message(GENESIS, meter, *fields)
    assert message.hex() == vector["message"][2:]
    _verifies_exactly(meter, message, _hex(vector["signature"]))
    reading = MeterReading(
        meter=vector["meter"],
        genesis_hash=VECTORS["genesis_hash"],
        epoch=fields[0],
        interval=fields[1],
        counter=fields[2],
        import_wh=fields[3],
        export_wh=fields[4],
        power_w=0,
        timestamp_ms=0,
        signature=vector["signature"],
    )
    assert reading.message() == message
    assert verify_reading(reading)
    # Bound to the chain and the accreditation epoch: another of either does not verify.
    assert not verify_reading(dataclasses.replace(reading, genesis_hash="0x" + "00" * 32))
    assert not verify_reading(dataclasses.replace(reading, epoch=(fields[0] + 1) % 2**32))
