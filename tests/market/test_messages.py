"""The signed messages, byte for byte as docs/chain-interface.md lays them out, and the
OrderSpec SCALE encoding checked against substrate-interface's own encoder (scalecodec)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scalecodec.base import RuntimeConfigurationObject
from scalecodec.type_registry import load_type_registry_preset

from market import (
    CANCEL_TAG,
    ORDER_TAG,
    READING_TAG,
    SIDES,
    SOURCES,
    MarketParams,
    OrderSpec,
    SignedOrder,
    cancel_message,
    dev_keypair,
    order_message,
    public_key,
    reading_message,
    sign_cancel,
    sign_order,
    ss58,
    units_to_brl,
    verify_cancel,
    verify_order,
    verify_sr25519,
)
from meter_bridge.reading import reading_message as bridge_reading_message

GENESIS = bytes(range(32))
ALICE = dev_keypair("Alice")
ALICE_PUB = bytes.fromhex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")


@pytest.fixture(scope="module")
def scale():
    """The pallet's types, declared the way substrate-interface's codec takes them."""
    rc = RuntimeConfigurationObject()
    rc.update_type_registry(load_type_registry_preset("legacy"))
    rc.update_type_registry(
        {
            "types": {
                "WattSide": {"type": "enum", "value_list": ["Bid", "Offer"]},
                "WattEnergySource": {
                    "type": "enum",
                    "value_list": ["Solar", "Wind", "Hydro", "Biomass", "GridMix"],
                },
                "WattOrderSpec": {
                    "type": "struct",
                    "type_mapping": [
                        ["client_order_id", "u64"],
                        ["interval", "u64"],
                        ["side", "WattSide"],
                        ["quantity_wh", "u64"],
                        ["price_ticks", "u64"],
                        ["zone", "u16"],
                        ["source", "WattEnergySource"],
                        ["renewable_only", "bool"],
                    ],
                },
                "WattMeterReading": {
                    "type": "struct",
                    "type_mapping": [
                        ["meter", "[u8; 32]"],
                        ["epoch", "u32"],
                        ["interval", "u64"],
                        ["counter", "u64"],
                        ["import_wh", "u64"],
                        ["export_wh", "u64"],
                    ],
                },
            }
        }
    )
    return rc


specs = st.builds(
    OrderSpec,
    client_order_id=st.integers(0, 2**64 - 1),
    interval=st.integers(0, 2**64 - 1),
    side=st.sampled_from(SIDES),
    quantity_wh=st.integers(0, 2**64 - 1),
    price_ticks=st.integers(0, 2**64 - 1),
    zone=st.integers(0, 2**16 - 1),
    source=st.sampled_from(SOURCES),
    renewable_only=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(spec=specs)
def test_order_spec_scale_matches_substrate_interface_encoder(scale, spec):
    obj = scale.create_scale_object("WattOrderSpec")
    encoded = bytes(obj.encode(spec.to_call_arg()).data)
    assert spec.encode() == encoded
    assert len(encoded) == 37
    # The chain's orders are read back through the same layout.
    assert OrderSpec.decode(encoded) == spec


def test_order_spec_decode_refuses_what_is_not_one():
    good = OrderSpec(7, 3, "offer", 1500, 75, 2, "wind", False).encode()
    for bad in (good[:-1], good + b"\x00", good[:16] + b"\x02" + good[17:], good[:-1] + b"\x02"):
        with pytest.raises(ValueError):
            OrderSpec.decode(bad)


def test_order_spec_known_bytes():
    spec = OrderSpec(7, 3, "offer", 1500, 75, 2, "wind", False)
    assert spec.encode().hex() == (
        "0700000000000000030000000000000001dc050000000000004b0000000000000002000100"
    )


def test_order_message_layout():
    spec = OrderSpec(1, 2, "bid", 1000, 80, 0, "grid_mix", True)
    msg = order_message(GENESIS, ALICE_PUB, spec)
    assert msg[: len(ORDER_TAG)] == b"wattchain:order:v1"
    assert msg[len(ORDER_TAG) : len(ORDER_TAG) + 32] == GENESIS
    assert msg[len(ORDER_TAG) + 32 : len(ORDER_TAG) + 64] == ALICE_PUB
    assert msg[len(ORDER_TAG) + 64 :] == struct.pack("<QQBQQHBB", 1, 2, 0, 1000, 80, 0, 4, 1)


def test_cancel_message_layout():
    msg = cancel_message(GENESIS, ALICE_PUB, 2**64 - 1)
    assert msg == CANCEL_TAG + GENESIS + ALICE_PUB + b"\xff" * 8


def test_reading_message_is_the_meter_bridges():
    meter = bytes(range(32, 64))
    assert reading_message(GENESIS, meter, 4, 5, 6, 7, 8) == bridge_reading_message(
        GENESIS, meter, 4, 5, 6, 7, 8
    )


def test_reading_message_layout(scale):
    """tag ++ genesis hash ++ SCALE(MeterReading), the struct submit_reading takes."""
    meter = bytes(range(32, 64))
    msg = reading_message(GENESIS, meter, 3, 89_805_158, 7, 1_250_123, 830_456)
    assert READING_TAG == b"wattchain:reading:v2"
    assert msg[: len(READING_TAG)] == READING_TAG
    assert msg[len(READING_TAG) : len(READING_TAG) + 32] == GENESIS
    reading = scale.create_scale_object("WattMeterReading").encode(
        {
            "meter": "0x" + meter.hex(),
            "epoch": 3,
            "interval": 89_805_158,
            "counter": 7,
            "import_wh": 1_250_123,
            "export_wh": 830_456,
        }
    )
    assert msg[len(READING_TAG) + 32 :] == bytes(reading.data)
    assert msg[len(READING_TAG) + 32 :] == meter + struct.pack(
        "<IQQQQ", 3, 89_805_158, 7, 1_250_123, 830_456
    )


@pytest.mark.parametrize(
    "args, problem",
    [
        ((bytes(31), bytes(32), 1, 1, 1, 1, 1), "genesis hash must be 32 bytes, got 31"),
        ((GENESIS, bytes(33), 1, 1, 1, 1, 1), "meter public key must be 32 bytes, got 33"),
        ((GENESIS, bytes(32), -1, 1, 1, 1, 1), "field epoch = -1 is outside 0..4294967295"),
        ((GENESIS, bytes(32), 2**32, 1, 1, 1, 1), "field epoch = 4294967296 is outside"),
        ((GENESIS, bytes(32), True, 1, 1, 1, 1), "field epoch must be an integer"),
        ((GENESIS, bytes(32), 1, 2**64, 1, 1, 1), "field interval = .* is outside"),
        ((GENESIS, bytes(32), 1, 1, 1, 1, -5), "field export_wh = -5 is outside"),
    ],
)
def test_reading_message_refuses_what_does_not_fit(args, problem):
    with pytest.raises(ValueError, match=problem):
        reading_message(*args)
    assert reading_message(GENESIS, bytes(32), 2**32 - 1, 2**64 - 1, 0, 0, 0)[-36:-32] == (
        b"\xff" * 4
    )


def test_sign_and_verify_order_and_cancel():
    spec = OrderSpec(42, 9, "offer", 500, 60, 1, "solar")
    signed = sign_order(ALICE, GENESIS, spec)
    assert signed.owner == ALICE.ss58_address and len(signed.signature) == 64
    assert verify_order(GENESIS, signed)
    assert not verify_order(bytes(32), signed)  # another chain
    assert not verify_order(
        GENESIS,
        SignedOrder(signed.owner, OrderSpec(42, 9, "offer", 501, 60, 1, "solar"), signed.signature),
    )
    bob = dev_keypair("Bob")
    assert not verify_order(GENESIS, SignedOrder(bob.ss58_address, spec, signed.signature))
    cancel = sign_cancel(ALICE, GENESIS, 42)
    assert verify_cancel(GENESIS, cancel)
    # An order signature is never a cancel signature (domain tags differ).
    assert not verify_sr25519(ALICE_PUB, cancel_message(GENESIS, ALICE_PUB, 42), signed.signature)


def test_wrapped_message_signatures_are_refused():
    """Keypair.verify would accept a signature over <Bytes>msg</Bytes>; the chain does not."""
    spec = OrderSpec(1, 1, "bid", 1, 1)
    msg = order_message(GENESIS, ALICE_PUB, spec)
    wrapped = bytes(ALICE.sign(b"<Bytes>" + msg + b"</Bytes>"))
    assert ALICE.verify(msg, wrapped)  # the quirk
    assert not verify_sr25519(ALICE_PUB, msg, wrapped)


def test_accounts():
    assert public_key(ALICE.ss58_address) == ALICE_PUB
    assert public_key("0x" + ALICE_PUB.hex()) == ALICE_PUB
    assert ss58(ALICE_PUB) == "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    with pytest.raises(ValueError):
        public_key("not-an-address")
    with pytest.raises(ValueError):
        public_key(b"short")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"side": "buy"},
        {"source": "coal"},
        {"quantity_wh": -1},
        {"price_ticks": 2**64},
        {"zone": 70000},
        {"renewable_only": 1},
        {"interval": 1.5},
    ],
)
def test_order_spec_rejects_bad_fields(kwargs):
    base = dict(client_order_id=1, interval=1, side="bid", quantity_wh=1, price_ticks=1)
    with pytest.raises(ValueError):
        OrderSpec(**{**base, **kwargs})


def test_market_params_gates():
    p = MarketParams(
        interval_ms=20_000,
        gate_closure_ms=10_000,
        min_price_ticks=1,
        max_price_ticks=10_000,
        max_quantity_wh=10**9,
        utility_tariff_ticks=95,
        feed_in_ticks=30,
        reading_window_ms=20_000,
        mechanism="uniform",
    )
    assert (
        p.gate_closure(5) == 90_000 and p.interval_end(5) == 120_000 and p.interval_at(119_999) == 5
    )
    assert p.reading_deadline(5) == 140_000
    assert p.first_open_interval(0) == 1  # gate of 1 is 10_000 > 0
    assert p.first_open_interval(9_999) == 1
    assert p.first_open_interval(10_000) == 2  # gate of 1 has closed
    assert p.first_open_interval(5_000, 5_000) == 2
    for now in range(0, 200_000, 777):
        k = p.first_open_interval(now, 4_000)
        assert p.gate_closure(k) > now + 4_000 >= p.gate_closure(k - 1)


def test_units_to_brl():
    assert units_to_brl(100_000) == "1.00000"
    assert units_to_brl(-1) == "-0.00001"
    assert units_to_brl(123_456_789) == "1234.56789"


def test_login_message_bytes():
    """The login a browser signs (api/web/src/messages.js has the same bytes in its test)."""
    from market import login_message

    alice = bytes.fromhex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
    challenge = bytes(range(100, 132))
    assert login_message(bytes(range(32)), alice, challenge).hex() == (
        "77617474636861696e3a6c6f67696e3a7631"
        + bytes(range(32)).hex()
        + alice.hex()
        + challenge.hex()
    )
    with pytest.raises(ValueError, match="challenge must be 32 bytes"):
        login_message(bytes(range(32)), alice, challenge[:31])
