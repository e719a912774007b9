"""Signed readings: the exact message, verification, tampering, and the counter on disk."""

from __future__ import annotations

import dataclasses
import json
import struct
import threading

import pytest
from substrateinterface import Keypair

from meter_bridge import (
    MalformedReading,
    MeterKey,
    MeterReading,
    MeterSigner,
    RawReading,
    ReadingError,
    StateFileError,
    reading_message,
    sign_reading,
    verify_reading,
)

RAW = RawReading(
    "sdm630", import_wh=1_250_123, export_wh=830_456, power_w=-2500, timestamp_ms=1_700_000_123_456
)


@pytest.fixture(scope="module")
def key() -> MeterKey:
    return MeterKey.from_uri("//Meter1")


def test_message_is_exactly_the_chain_format(key):
    expected = (
        b"wattchain:reading:v1"
        + key.public_key
        + (42).to_bytes(8, "little")
        + (7).to_bytes(8, "little")
        + (1_250_123).to_bytes(8, "little")
        + (830_456).to_bytes(8, "little")
    )
    assert reading_message(key.public_key, 42, 7, 1_250_123, 830_456) == expected
    assert len(expected) == 20 + 32 + 32
    assert sign_reading(RAW, key, 42, 7).message() == expected


def test_dev_key_is_the_substrate_dev_derivation(key):
    assert key.public_key == bytes(Keypair.create_from_uri("//Meter1").public_key)
    assert MeterKey.from_uri("//Meter2").public_key != key.public_key


def test_signature_verifies_and_is_the_meters(key):
    reading = sign_reading(RAW, key, 42, 7)
    assert reading.meter == "0x" + key.public_key.hex()
    assert verify_reading(reading)
    assert verify_reading(reading.to_dict())
    assert verify_reading(reading.to_json())
    # substrate-interface agrees on the bytes signed (sr25519, "substrate" context).
    kp = Keypair(public_key=key.public_key, ss58_format=42)
    assert kp.verify(reading.message(), bytes.fromhex(reading.signature[2:]))


@pytest.mark.parametrize(
    "field, value",
    [
        ("interval", 43),
        ("counter", 8),
        ("import_wh", 1_250_124),
        ("export_wh", 830_455),
        ("meter", None),
        ("signature", None),
    ],
)
def test_tampered_field_fails(key, field, value):
    reading = sign_reading(RAW, key, 42, 7)
    if field == "meter":
        value = MeterKey.from_uri("//Meter2").public_key_hex
    if field == "signature":
        sig = bytearray(bytes.fromhex(reading.signature[2:]))
        sig[10] ^= 0x01
        value = "0x" + sig.hex()
    assert not verify_reading(dataclasses.replace(reading, **{field: value}))


def test_unsigned_fields_do_not_affect_the_signature(key):
    # power_w and timestamp_ms are informative; the chain verifies only the signed fields.
    reading = sign_reading(RAW, key, 42, 7)
    assert verify_reading(dataclasses.replace(reading, power_w=1, timestamp_ms=2))


def test_polkadot_js_bytes_wrapping_is_not_accepted(key):
    reading = sign_reading(RAW, key, 42, 7)
    wrapped = Keypair.create_from_uri("//Meter1").sign(b"<Bytes>" + reading.message() + b"</Bytes>")
    assert not verify_reading(dataclasses.replace(reading, signature="0x" + bytes(wrapped).hex()))


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda d: d.pop("counter"), "lacks field.*counter"),
        (lambda d: d.update(import_wh=12.5), "import_wh must be an integer"),
        (lambda d: d.update(export_wh=True), "export_wh must be an integer"),
        (lambda d: d.update(interval=-1), "interval = -1 is outside"),
        (lambda d: d.update(counter=2**64), "counter = .* is outside"),
        (lambda d: d.update(meter="0x1234"), "meter must be 32 bytes"),
        (lambda d: d.update(signature="0xzz"), "signature is not hex"),
    ],
)
def test_malformed_reading_is_a_clear_error(key, change, problem):
    data = sign_reading(RAW, key, 42, 7).to_dict()
    change(data)
    with pytest.raises(MalformedReading, match=problem):
        verify_reading(data)
    with pytest.raises(MalformedReading, match="not valid JSON"):
        verify_reading("{not json")


def test_counter_survives_restarts(key, tmp_path):
    state = tmp_path / "meter1.json"
    signer = MeterSigner(key, state)
    counters = [signer.sign(RAW, 100 + i).counter for i in range(3)]
    assert counters == [1, 2, 3]
    restarted = MeterSigner(key, state)  # a new process, same state file
    assert restarted.last_counter == 3
    fourth = restarted.sign(dataclasses.replace(RAW, import_wh=RAW.import_wh + 10), 103)
    assert fourth.counter == 4 and verify_reading(fourth)
    assert restarted.last_reading() == fourth  # recoverable after a crash, to send again
    stored = json.loads(state.read_text())
    assert stored["counter"] == 4 and stored["meter"] == key.public_key_hex


def test_new_state_file_can_resume_after_the_chains_last_counter(key, tmp_path):
    signer = MeterSigner(key, tmp_path / "s.json", start_after=41)
    assert signer.sign(RAW, 1).counter == 42
    assert MeterSigner(key, tmp_path / "s.json").sign(RAW, 2).counter == 43  # the file now rules


def test_backwards_register_is_refused_without_spending_a_counter(key, tmp_path):
    signer = MeterSigner(key, tmp_path / "s.json")
    signer.sign(RAW, 1)
    with pytest.raises(ReadingError, match="export_wh.*ran backwards: 830455 Wh after 830456 Wh"):
        signer.sign(dataclasses.replace(RAW, export_wh=RAW.export_wh - 1), 2)
    assert signer.last_counter == 1
    assert signer.sign(RAW, 2).counter == 2


def test_bad_state_files_are_errors_never_a_silent_reset(key, tmp_path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"counter": 5, "meter": ')
    with pytest.raises(StateFileError, match="unreadable"):
        MeterSigner(key, corrupt).sign(RAW, 1)
    assert corrupt.read_text() == '{"counter": 5, "meter": '  # left for the operator to restore

    other = tmp_path / "other.json"
    MeterSigner(MeterKey.from_uri("//Meter2"), other).sign(RAW, 1)
    with pytest.raises(StateFileError, match="belongs to meter"):
        MeterSigner(key, other).sign(RAW, 2)

    no_counter = tmp_path / "nocounter.json"
    no_counter.write_text(json.dumps({"meter": key.public_key_hex, "counter": "7"}))
    with pytest.raises(StateFileError, match="no integer 'counter'"):
        MeterSigner(key, no_counter).sign(RAW, 1)


def test_concurrent_signers_never_share_a_counter(key, tmp_path):
    state = tmp_path / "shared.json"
    counters: list[int] = []
    lock = threading.Lock()

    def work():
        signer = MeterSigner(key, state)  # each its own file handle, as two processes would
        for i in range(10):
            c = signer.sign(RAW, i).counter
            with lock:
                counters.append(c)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counters) == list(range(1, 31))


def test_message_fields_are_unsigned_64_bit(key):
    with pytest.raises(MalformedReading, match="import_wh = -1"):
        sign_reading(dataclasses.replace(RAW, import_wh=-1), key, 1, 1)
    big = struct.unpack("<Q", b"\xff" * 8)[0]
    assert verify_reading(sign_reading(dataclasses.replace(RAW, export_wh=big), key, big, big))


def test_reading_json_round_trip(key):
    reading = sign_reading(RAW, key, 42, 7)
    assert MeterReading.from_json(reading.to_json()) == reading
    assert set(json.loads(reading.to_json())) == {
        "meter",
        "interval",
        "counter",
        "import_wh",
        "export_wh",
        "power_w",
        "timestamp_ms",
        "signature",
    }
