"""Signed readings: the exact message, its binding to a chain and an accreditation epoch,
verification, tampering, and the counter on disk."""

from __future__ import annotations

import dataclasses
import json
import struct
import threading

import pytest
from substrateinterface import Keypair

from meter_bridge import (
    Accreditation,
    ConfigurationError,
    MalformedReading,
    MeterKey,
    MeterReading,
    MeterSigner,
    RawReading,
    ReadingError,
    StateFileError,
    reading_message,
    resign_reading,
    sign_reading,
    verify_reading,
)

RAW = RawReading(
    "sdm630", import_wh=1_250_123, export_wh=830_456, power_w=-2500, timestamp_ms=1_700_000_123_456
)
GENESIS = bytes(range(32))
ACC = Accreditation(GENESIS, 1)  # the meter's first accreditation on the chain GENESIS


@pytest.fixture(scope="module")
def key() -> MeterKey:
    return MeterKey.from_uri("//Meter1")


def test_message_is_exactly_the_chain_format(key):
    expected = (
        b"wattchain:reading:v2"
        + GENESIS
        + key.public_key
        + (3).to_bytes(4, "little")
        + (42).to_bytes(8, "little")
        + (7).to_bytes(8, "little")
        + (1_250_123).to_bytes(8, "little")
        + (830_456).to_bytes(8, "little")
    )
    assert reading_message(GENESIS, key.public_key, 3, 42, 7, 1_250_123, 830_456) == expected
    assert len(expected) == 20 + 32 + 32 + 4 + 32
    reading = sign_reading(RAW, key, Accreditation(GENESIS, 3), 42, 7)
    assert reading.message() == expected
    assert (reading.genesis_hash, reading.epoch) == ("0x" + GENESIS.hex(), 3)
    assert reading.accreditation == Accreditation(GENESIS, 3)


def test_dev_key_is_the_substrate_dev_derivation(key):
    assert key.public_key == bytes(Keypair.create_from_uri("//Meter1").public_key)
    assert MeterKey.from_uri("//Meter2").public_key != key.public_key


def test_signature_verifies_and_is_the_meters(key):
    reading = sign_reading(RAW, key, ACC, 42, 7)
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
        ("genesis_hash", "0x" + bytes(range(1, 33)).hex()),  # signed for another chain
        ("epoch", 2),  # signed before the meter's latest accreditation
        ("interval", 43),
        ("counter", 8),
        ("import_wh", 1_250_124),
        ("export_wh", 830_455),
        ("meter", None),
        ("signature", None),
    ],
)
def test_tampered_field_fails(key, field, value):
    reading = sign_reading(RAW, key, ACC, 42, 7)
    if field == "meter":
        value = MeterKey.from_uri("//Meter2").public_key_hex
    if field == "signature":
        sig = bytearray(bytes.fromhex(reading.signature[2:]))
        sig[10] ^= 0x01
        value = "0x" + sig.hex()
    assert not verify_reading(dataclasses.replace(reading, **{field: value}))


def test_unsigned_fields_do_not_affect_the_signature(key):
    # power_w and timestamp_ms are informative; the chain verifies only the signed fields.
    reading = sign_reading(RAW, key, ACC, 42, 7)
    assert verify_reading(dataclasses.replace(reading, power_w=1, timestamp_ms=2))


def test_polkadot_js_bytes_wrapping_is_not_accepted(key):
    reading = sign_reading(RAW, key, ACC, 42, 7)
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
        (lambda d: d.pop("epoch"), "lacks field.*epoch"),
        (lambda d: d.pop("genesis_hash"), "lacks field.*genesis_hash"),
        (lambda d: d.update(epoch=2**32), "epoch = 4294967296 is outside 0..4294967295"),
        (lambda d: d.update(epoch=-1), "epoch = -1 is outside"),
        (lambda d: d.update(epoch="1"), "epoch must be an integer"),
        (lambda d: d.update(genesis_hash="0x00"), "genesis_hash must be 32 bytes"),
        (lambda d: d.update(genesis_hash=None), "genesis_hash must be a hex string"),
        (lambda d: d.update(genesis_hash="0x" + "zz" * 32), "genesis_hash is not hex"),
    ],
)
def test_malformed_reading_is_a_clear_error(key, change, problem):
    data = sign_reading(RAW, key, ACC, 42, 7).to_dict()
    change(data)
    with pytest.raises(MalformedReading, match=problem):
        verify_reading(data)
    with pytest.raises(MalformedReading, match="not valid JSON"):
        verify_reading("{not json")


def test_counter_survives_restarts(key, tmp_path):
    state = tmp_path / "meter1.json"
    signer = MeterSigner(key, state, ACC)
    counters = [signer.sign(RAW, 100 + i).counter for i in range(3)]
    assert counters == [1, 2, 3]
    restarted = MeterSigner(key, state, ACC)  # a new process, same state file
    assert restarted.last_counter == 3
    fourth = restarted.sign(dataclasses.replace(RAW, import_wh=RAW.import_wh + 10), 103)
    assert fourth.counter == 4 and verify_reading(fourth)
    assert restarted.last_reading() == fourth  # recoverable after a crash, to send again
    stored = json.loads(state.read_text())
    assert stored["counter"] == 4 and stored["meter"] == key.public_key_hex


def test_new_state_file_can_resume_after_the_chains_last_counter(key, tmp_path):
    signer = MeterSigner(key, tmp_path / "s.json", ACC, start_after=41)
    assert signer.sign(RAW, 1).counter == 42
    assert (
        MeterSigner(key, tmp_path / "s.json", ACC).sign(RAW, 2).counter == 43
    )  # the file now rules


def test_backwards_register_is_refused_without_spending_a_counter(key, tmp_path):
    signer = MeterSigner(key, tmp_path / "s.json", ACC)
    signer.sign(RAW, 1)
    with pytest.raises(ReadingError, match="export_wh.*ran backwards: 830455 Wh after 830456 Wh"):
        signer.sign(dataclasses.replace(RAW, export_wh=RAW.export_wh - 1), 2)
    assert signer.last_counter == 1
    assert signer.sign(RAW, 2).counter == 2


def test_bad_state_files_are_errors_never_a_silent_reset(key, tmp_path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"counter": 5, "meter": ')
    with pytest.raises(StateFileError, match="unreadable"):
        MeterSigner(key, corrupt, ACC).sign(RAW, 1)
    assert corrupt.read_text() == '{"counter": 5, "meter": '  # left for the operator to restore

    other = tmp_path / "other.json"
    MeterSigner(MeterKey.from_uri("//Meter2"), other, ACC).sign(RAW, 1)
    with pytest.raises(StateFileError, match="belongs to meter"):
        MeterSigner(key, other, ACC).sign(RAW, 2)

    no_counter = tmp_path / "nocounter.json"
    no_counter.write_text(json.dumps({"meter": key.public_key_hex, "counter": "7"}))
    with pytest.raises(StateFileError, match="no integer 'counter'"):
        MeterSigner(key, no_counter, ACC).sign(RAW, 1)


def test_concurrent_signers_never_share_a_counter(key, tmp_path):
    state = tmp_path / "shared.json"
    counters: list[int] = []
    lock = threading.Lock()

    def work():
        signer = MeterSigner(key, state, ACC)  # each its own file handle, as two processes would
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
        sign_reading(dataclasses.replace(RAW, import_wh=-1), key, ACC, 1, 1)
    big = struct.unpack("<Q", b"\xff" * 8)[0]
    assert verify_reading(sign_reading(dataclasses.replace(RAW, export_wh=big), key, ACC, big, big))
    top = Accreditation(GENESIS, 2**32 - 1)
    assert verify_reading(sign_reading(RAW, key, top, 1, 1))


def test_reading_json_round_trip(key):
    reading = sign_reading(RAW, key, ACC, 42, 7)
    assert MeterReading.from_json(reading.to_json()) == reading
    assert set(json.loads(reading.to_json())) == {
        "meter",
        "genesis_hash",
        "epoch",
        "interval",
        "counter",
        "import_wh",
        "export_wh",
        "power_w",
        "timestamp_ms",
        "signature",
    }


def test_accreditation_is_checked_where_it_is_made():
    assert Accreditation.from_hex("0x" + GENESIS.hex(), 1) == ACC
    assert Accreditation.from_hex(GENESIS.hex(), 1) == ACC
    assert ACC.genesis_hash_hex == "0x" + GENESIS.hex()
    for args, problem in [
        ((GENESIS[:31], 1), "genesis hash must be 32 bytes, got 31"),
        (("0x" + GENESIS.hex(), 1), "genesis hash must be bytes"),
        ((GENESIS, -1), "epoch must be an integer in 0..4294967295, not -1"),
        ((GENESIS, 2**32), "epoch must be an integer in 0..4294967295"),
        ((GENESIS, True), "epoch must be an integer"),
    ]:
        with pytest.raises(ConfigurationError, match=problem):
            Accreditation(*args)
    with pytest.raises(ConfigurationError, match="genesis hash is not hex"):
        Accreditation.from_hex("0xnothex", 1)


def test_a_re_accredited_meter_signs_under_its_new_epoch(key, tmp_path):
    signer = MeterSigner(key, tmp_path / "s.json", ACC)
    first = signer.sign(RAW, 1)
    signer.accreditation = Accreditation(GENESIS, 2)  # provisioned again by the operator
    second = signer.sign(dataclasses.replace(RAW, import_wh=RAW.import_wh + 1), 2)
    assert (first.epoch, first.counter) == (1, 1)
    assert (second.epoch, second.counter) == (2, 2)  # the counter carries on
    assert verify_reading(first) and verify_reading(second)
    # The same signed reading under the old epoch is another message: not the new one's.
    assert first.message() != dataclasses.replace(first, epoch=2).message()


def test_an_unprovisioned_signer_refuses_to_sign(key, tmp_path):
    signer = MeterSigner(key, tmp_path / "s.json")
    with pytest.raises(ConfigurationError, match="not provisioned"):
        signer.sign(RAW, 1)
    assert signer.last_counter == 0  # nothing spent
    with pytest.raises(TypeError, match="must be an Accreditation"):
        MeterSigner(key, tmp_path / "s.json", ("0x00", 1))


def test_resign_keeps_the_counter_and_changes_only_the_binding(key):
    old = sign_reading(RAW, key, ACC, 42, 7)
    fresh = resign_reading(old, key, Accreditation(GENESIS, 2))
    assert verify_reading(fresh) and fresh.epoch == 2
    assert dataclasses.replace(fresh, epoch=1, signature=old.signature) == old
    with pytest.raises(ConfigurationError, match="cannot be signed with the key of"):
        resign_reading(old, MeterKey.from_uri("//Meter2"), ACC)


def test_a_version_1_state_file_keeps_its_counter(key, tmp_path):
    """A state file written before readings were bound: its counter goes on, and its last
    reading (a v1 message no chain takes now) is dropped rather than a reason to stop."""
    state = tmp_path / "v1.json"
    v1_reading = {
        "meter": key.public_key_hex,
        "interval": 41,
        "counter": 9,
        "import_wh": 1,
        "export_wh": 2,
        "power_w": 0,
        "timestamp_ms": 0,
        "signature": "0x" + "00" * 64,
    }
    state.write_text(
        json.dumps(
            {"version": 1, "meter": key.public_key_hex, "counter": 9, "last_reading": v1_reading}
        )
    )
    signer = MeterSigner(key, state, ACC)
    assert signer.last_reading() is None and signer.last_counter == 9
    reading = signer.sign(RAW, 42)
    assert reading.counter == 10 and verify_reading(reading)
    stored = json.loads(state.read_text())
    assert stored["version"] == 2 and stored["last_reading"]["epoch"] == 1
