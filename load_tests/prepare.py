"""Register and fund the load-test traders on a dev chain (operator //Alice), so their orders
pass the API's checks: `python -m load_tests.prepare --node ws://127.0.0.1:9944 --traders 20`.
Prints the secret URIs (dev keys, dev chains only) the locustfile reads from
WATTCHAIN_LOAD_KEYS."""

from __future__ import annotations

import argparse
import sys

from chain import Chain, Newcomer, onboard
from market import UNITS_PER_BRL, keypair
from market.settings import Settings
from meter_bridge import MeterKey
from meter_bridge.registers import SDM630


def trader_uris(n: int) -> list[str]:
    return [f"//WattChain/load/{i}" for i in range(n)]


def prepare(node_url: str, traders: int, *, zone: int = 0, fund_brl: int = 100_000) -> list[str]:
    uris = trader_uris(traders)
    chain = Chain(node_url).connect()
    try:
        settings = Settings()
        onboard(
            chain,
            keypair(settings.operator_uri),
            keypair(settings.distributor_uri),
            [
                # A solar meter each: the load test's offers are solar, and a renewable offer
                # needs an accredited meter of its source.
                Newcomer(
                    keypair(uri).ss58_address,
                    zone,
                    fund_brl * UNITS_PER_BRL,
                    meter=MeterKey.from_uri(f"{uri}/meter").public_key_hex,
                    rated_power_w=SDM630.rated_power_w,
                )
                for uri in uris
            ],
        )
    finally:
        chain.close()
    return uris


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m load_tests.prepare", description=__doc__)
    p.add_argument("--node", default="ws://127.0.0.1:9944")
    p.add_argument("--traders", type=int, default=20)
    args = p.parse_args(argv)
    uris = prepare(args.node, args.traders)
    print(",".join(uris))
    print(f"registered and funded {len(uris)} traders", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
