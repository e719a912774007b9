"""Writes docs/vectors/signed-messages.json: golden bytes of every signed message, with keys from
fixed seeds and a signature that must verify. The pallet's tests and ours both read the file, so
the Rust and Python layouts cannot drift apart silently. Run it only when a layout changes:
`.venv/bin/python tests/market/make_vectors.py`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from market import (  # noqa: E402
    U32_MAX,
    U64_MAX,
    OrderSpec,
    cancel_message,
    keypair,
    order_message,
    reading_message,
)

OUT = ROOT / "docs" / "vectors" / "signed-messages.json"


def main() -> None:
    genesis = bytes(range(32))
    owner = keypair("0x" + "11" * 32)
    meter = keypair("0x" + "22" * 32)
    owner_key = bytes(owner.public_key)
    meter_key = bytes(meter.public_key)
    specs = [
        OrderSpec(1, 89_805_158, "bid", 1_500, 80, 0, "grid_mix", False),
        OrderSpec(2, 89_805_158, "offer", 2_000, 55, 3, "solar", False),
        OrderSpec(3, 7, "bid", 1, 1, 65_535, "biomass", True),
        OrderSpec(U64_MAX, U64_MAX, "offer", U64_MAX, U64_MAX, 1, "hydro", True),
        OrderSpec(0, 0, "bid", 0, 0, 2, "wind", False),
    ]
    orders = []
    for spec in specs:
        message = order_message(genesis, owner_key, spec)
        orders.append(
            {
                "owner": "0x" + owner_key.hex(),
                "spec": spec.as_dict(),
                "message": "0x" + message.hex(),
                "signature": "0x" + bytes(owner.sign(message)).hex(),
            }
        )
    cancels = []
    for client_order_id in (1, 0, U64_MAX):
        message = cancel_message(genesis, owner_key, client_order_id)
        cancels.append(
            {
                "owner": "0x" + owner_key.hex(),
                "client_order_id": client_order_id,
                "message": "0x" + message.hex(),
                "signature": "0x" + bytes(owner.sign(message)).hex(),
            }
        )
    # Readings are signed for the file's genesis hash too. Epoch 0 is never a meter's epoch on
    # chain (the first accreditation makes it 1), but its bytes are as well defined as any.
    readings = []
    for epoch, interval, counter, import_wh, export_wh in (
        (1, 89_805_158, 1, 12_345, 678),
        (2, 89_805_160, 7, 1_250_123, 830_456),
        (0, 0, 0, 0, 0),
        (U32_MAX, U64_MAX, U64_MAX, U64_MAX, U64_MAX),
    ):
        message = reading_message(
            genesis, meter_key, epoch, interval, counter, import_wh, export_wh
        )
        readings.append(
            {
                "meter": "0x" + meter_key.hex(),
                "epoch": epoch,
                "interval": interval,
                "counter": counter,
                "import_wh": import_wh,
                "export_wh": export_wh,
                "message": "0x" + message.hex(),
                "signature": "0x" + bytes(meter.sign(message)).hex(),
            }
        )
    vectors = {
        "genesis_hash": "0x" + genesis.hex(),
        "orders": orders,
        "cancels": cancels,
        "readings": readings,
    }
    OUT.write_text(json.dumps(vectors, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
