"""The meter's sr25519 key: the one place that uses substrate-interface and the sr25519 bindings.

substrate-interface is in maintenance, so key handling is wrapped here. Verification calls
the sr25519 bindings directly: Keypair.verify also accepts a signature over
b"<Bytes>" + message + b"</Bytes>" (a polkadot.js quirk) that the chain would reject.
"""

from __future__ import annotations

import os

import sr25519
from substrateinterface import Keypair, KeypairType

from market import verify_sr25519

from .errors import ConfigurationError

# Environment variable the CLI reads a key from, so it need not appear on a command line.
KEY_ENV = "WATTCHAIN_METER_KEY"


class MeterKey:
    """A meter's signing key (sr25519, the chain's own scheme)."""

    def __init__(self, keypair: Keypair):
        if keypair.crypto_type != KeypairType.SR25519:
            raise ConfigurationError("a meter key must be sr25519")
        if not keypair.private_key:
            raise ConfigurationError("a meter key needs its secret part to sign")
        self._keypair = keypair

    @classmethod
    def from_uri(cls, suri: str) -> MeterKey:
        """A secret URI: a dev path such as //Meter1 (dev chains only), a mnemonic, or a 0x seed."""
        suri = suri.strip()
        if not suri:
            raise ConfigurationError("empty meter key")
        try:
            if suri.startswith("0x") and "/" not in suri:
                return cls(Keypair.create_from_seed(suri, crypto_type=KeypairType.SR25519))
            return cls(Keypair.create_from_uri(suri, crypto_type=KeypairType.SR25519))
        except Exception as exc:  # substrate-interface raises bare ValueErrors and its own types
            raise ConfigurationError(
                f"cannot make a meter key from the given secret URI: {exc}"
            ) from None

    @classmethod
    def from_env(cls) -> MeterKey:
        suri = os.environ.get(KEY_ENV)
        if not suri:
            raise ConfigurationError(f"no meter key: set {KEY_ENV} or pass --key")
        return cls.from_uri(suri)

    @property
    def public_key(self) -> bytes:
        return bytes(self._keypair.public_key)

    @property
    def public_key_hex(self) -> str:
        return "0x" + self.public_key.hex()

    @property
    def ss58_address(self) -> str:
        return self._keypair.ss58_address

    def sign(self, message: bytes) -> bytes:
        return bytes(self._keypair.sign(message))


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True only for an sr25519 signature over exactly `message` (signing context "substrate")."""
    return verify_sr25519(public_key, message, signature)
    try:
        return bool(sr25519.verify(signature, message, public_key))
    except (ValueError, TypeError):
        return False
