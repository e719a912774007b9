"""Accounts and keys: SS58 addresses (format 42) on the Python side, 32-byte public keys in
signed messages, sr25519 signatures checked exactly as the pallet checks them."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

import sr25519
from scalecodec.utils.ss58 import ss58_decode, ss58_encode

if TYPE_CHECKING:  # the key type of substrate-interface; imported only when a key is made
    from substrateinterface import Keypair

SS58_FORMAT = 42
# Addresses converted and remembered. scalecodec's base58, in pure Python, took about a twentieth
# of the API's time per order and a decode an order in each relayed batch; a market's traders
# are far fewer than this.
_REMEMBERED = 4096


class Signer(Protocol):
    """What signing needs of a key: substrate-interface's `Keypair` is one."""

    ss58_address: str
    public_key: bytes

    def sign(self, data: bytes) -> bytes: ...


def keypair(suri: str) -> Keypair:
    """An sr25519 keypair from a secret URI: a dev path (`//Alice`, dev chains only), a mnemonic
    with optional derivation path, or a 0x-prefixed 32-byte seed."""
    # Imported here so that verifying (the API, the public client) does not load the node library.
    from substrateinterface import Keypair, KeypairType

    suri = suri.strip()
    if suri.startswith("0x") and "/" not in suri:
        return Keypair.create_from_seed(
            suri, ss58_format=SS58_FORMAT, crypto_type=KeypairType.SR25519
        )
    return Keypair.create_from_uri(suri, ss58_format=SS58_FORMAT, crypto_type=KeypairType.SR25519)


def dev_keypair(name: str) -> Keypair:
    """`dev_keypair("Alice")` is //Alice. For dev chains only: everyone knows these secrets."""
    return keypair(name if name.startswith("/") else f"//{name}")


def public_key(account: str | bytes) -> bytes:
    """32-byte public key of an SS58 address, a 0x hex key or raw bytes. Raises ValueError."""
    if isinstance(account, (bytes, bytearray)):
        raw = bytes(account)
    elif isinstance(account, str) and account.startswith("0x"):
        raw = bytes.fromhex(account[2:])
    elif isinstance(account, str):
        raw = _decoded(account)
    else:
        raise ValueError(f"not an account: {account!r}")
    if len(raw) != 32:
        raise ValueError(f"an account key is 32 bytes, got {len(raw)}")
    return raw


def ss58(account: str | bytes) -> str:
    """The SS58 (format 42) address of an account given as address, 0x hex or bytes."""
    return _encoded(public_key(account))


@lru_cache(maxsize=_REMEMBERED)
def _decoded(address: str) -> bytes:
    return bytes.fromhex(ss58_decode(address))  # a bad address raises, and is not remembered


@lru_cache(maxsize=_REMEMBERED)
def _encoded(key: bytes) -> str:
    return str(ss58_encode(key, ss58_format=SS58_FORMAT))


def verify_sr25519(public: bytes, message: bytes, signature: bytes) -> bool:
    """True only for an sr25519 signature over exactly `message` (context "substrate"), as the
    pallet checks it. (Keypair.verify would also accept a <Bytes>-wrapped message.)"""
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        return bool(sr25519.verify(bytes(signature), bytes(message), bytes(public)))
    except (ValueError, TypeError):
        return False
