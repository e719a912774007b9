"""Command line: `python -m matcher clear ...` prints a clearing as JSON; `python -m matcher
verify ...` re-checks one. Exit codes: 0 ok, 1 verify found violations, 2 bad input."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from . import MECHANISMS, NetworkError, OrderError, as_network, clear_book, read_orders_csv, verify


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m matcher", description="WattChain clearing engine"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    clear = commands.add_parser(
        "clear", help="clear a CSV of orders and print the clearing as JSON"
    )
    clear.add_argument(
        "--orders",
        required=True,
        help="CSV with id,side,quantity_wh,price[,zone,source,renewable_only]",
    )
    clear.add_argument("--mechanism", default="uniform", choices=MECHANISMS)
    clear.add_argument("--network", help="network JSON (zones, lines) for zonal clearing")
    clear.add_argument(
        "--output", help="write the JSON to this file (atomically) instead of stdout"
    )
    check = commands.add_parser("verify", help="re-check a clearing under the pallet's conditions")
    check.add_argument("--orders", required=True)
    check.add_argument("--clearing", required=True, help="clearing JSON as printed by 'clear'")
    check.add_argument("--network", help="network JSON, for the grid fees")
    return parser


def _write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".clearing-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        book = read_orders_csv(args.orders)
        network = as_network(args.network) if args.network else None
        if args.command == "clear":
            text = clear_book(book, args.mechanism, network).to_json()
            if args.output:
                _write_atomically(args.output, text)
            else:
                sys.stdout.write(text)
            return 0
        try:
            with open(args.clearing, encoding="utf-8") as handle:
                clearing = json.load(handle)
        except OSError as exc:
            raise ValueError(f"{args.clearing}: cannot read: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{args.clearing}: line {exc.lineno}: not valid JSON: {exc.msg}"
            ) from exc
    except OrderError as exc:
        print(f"error: {args.orders}: {exc}", file=sys.stderr)
        return 2
    except (NetworkError, ValueError, OverflowError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    violations = verify(book, clearing, network)
    if violations:
        for violation in violations:
            print(f"FAIL {violation}", file=sys.stderr)
        return 1
    print(
        f"ok: {clearing.get('mechanism')} clearing, {len(clearing['matches'])} matches, "
        f"volume {clearing.get('volume_wh')} Wh"
    )
    return 0
