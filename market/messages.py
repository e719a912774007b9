"""The signed messages of docs/chain-interface.md, byte for byte as the pallet builds them, and
the signed order and cancel as the relayer hands them to the chain. Golden vectors of every
layout are in docs/vectors/signed-messages.json, read by the pallet's tests and ours."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .accounts import Signer, public_key, verify_sr25519
from .specs import OrderSpec
from .units import U32_MAX, U64_MAX

ORDER_TAG = b"wattchain:order:v1"
CANCEL_TAG = b"wattchain:cancel:v1"
READING_TAG = b"wattchain:reading:v2"
# Signed by a browser to open a session with the API; never valid on chain (another tag).
LOGIN_TAG = b"wattchain:login:v1"


def order_message(genesis_hash: bytes, owner: bytes, spec: OrderSpec) -> bytes:
    """`b"wattchain:order:v1" ++ genesis_hash[32] ++ owner[32] ++ OrderSpec`."""
    _check_len("genesis hash", genesis_hash, 32)
    _check_len("owner", owner, 32)
    return ORDER_TAG + bytes(genesis_hash) + bytes(owner) + spec.encode()


def cancel_message(genesis_hash: bytes, owner: bytes, client_order_id: int) -> bytes:
    """`b"wattchain:cancel:v1" ++ genesis_hash[32] ++ owner[32] ++ client_order_id u64`."""
    _check_len("genesis hash", genesis_hash, 32)
    _check_len("owner", owner, 32)
    _check_u64("client_order_id", client_order_id)
    return CANCEL_TAG + bytes(genesis_hash) + bytes(owner) + struct.pack("<Q", client_order_id)


def login_message(genesis_hash: bytes, account: bytes, challenge: bytes) -> bytes:
    """`b"wattchain:login:v1" ++ genesis_hash[32] ++ account[32] ++ challenge[32]`: what a
    browser signs to open an API session as `account`, the challenge being the API's
    (api/auth.py)."""
    _check_len("genesis hash", genesis_hash, 32)
    _check_len("account", account, 32)
    _check_len("challenge", challenge, 32)
    return LOGIN_TAG + bytes(genesis_hash) + bytes(account) + bytes(challenge)


def reading_message(
    genesis_hash: bytes,
    meter: bytes,
    epoch: int,
    interval: int,
    counter: int,
    import_wh: int,
    export_wh: int,
) -> bytes:
    """`b"wattchain:reading:v2" ++ genesis_hash[32] ++ MeterReading`, where `MeterReading =
    meter_public_key[32] ++ epoch u32 ++ interval u64 ++ counter u64 ++ import_wh u64 ++
    export_wh u64` (little-endian). The genesis hash binds the reading to one chain and the
    epoch to one accreditation of the meter (docs/chain-interface.md)."""
    _check_len("genesis hash", genesis_hash, 32)
    _check_len("meter public key", meter, 32)
    _check_uint("epoch", epoch, U32_MAX)
    for name, value in (
        ("interval", interval),
        ("counter", counter),
        ("import_wh", import_wh),
        ("export_wh", export_wh),
    ):
        _check_u64(name, value)
    return (
        READING_TAG
        + bytes(genesis_hash)
        + bytes(meter)
        + struct.pack("<IQQQQ", epoch, interval, counter, import_wh, export_wh)
    )


def _check_len(what: str, value: bytes, n: int) -> None:
    if len(value) != n:
        raise ValueError(f"{what} must be {n} bytes, got {len(value)}")


def _check_u64(name: str, value: int) -> None:
    _check_uint(name, value, U64_MAX)


def _check_uint(name: str, value: int, high: int) -> None:
    # bool is an int in Python; a message field never is one.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"field {name} must be an integer, not {value!r}")
    if not 0 <= value <= high:
        raise ValueError(f"field {name} = {value} is outside 0..{high}")


@dataclass(frozen=True)
class SignedOrder:
    owner: str  # SS58
    spec: OrderSpec
    signature: bytes  # 64 bytes

    def to_call_arg(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "spec": self.spec.to_call_arg(),
            "signature": "0x" + self.signature.hex(),
        }


@dataclass(frozen=True)
class SignedCancel:
    owner: str
    client_order_id: int
    signature: bytes

    def to_call_arg(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "client_order_id": self.client_order_id,
            "signature": "0x" + self.signature.hex(),
        }


def sign_order(signer: Signer, genesis_hash: bytes, spec: OrderSpec) -> SignedOrder:
    signature = bytes(signer.sign(order_message(genesis_hash, bytes(signer.public_key), spec)))
    return SignedOrder(signer.ss58_address, spec, signature)


def sign_cancel(signer: Signer, genesis_hash: bytes, client_order_id: int) -> SignedCancel:
    signature = bytes(
        signer.sign(cancel_message(genesis_hash, bytes(signer.public_key), client_order_id))
    )
    return SignedCancel(signer.ss58_address, client_order_id, signature)


def verify_order(genesis_hash: bytes, order: SignedOrder) -> bool:
    owner = public_key(order.owner)
    return verify_sr25519(owner, order_message(genesis_hash, owner, order.spec), order.signature)


def verify_cancel(genesis_hash: bytes, cancel: SignedCancel) -> bool:
    owner = public_key(cancel.owner)
    return verify_sr25519(
        owner, cancel_message(genesis_hash, owner, cancel.client_order_id), cancel.signature
    )
