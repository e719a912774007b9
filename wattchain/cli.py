"""`wattchain`: one command line for the market.

    wattchain demo --intervals N [--json] [--data DIR]   a whole market, live, N intervals
    wattchain run [--data DIR] [--node URL] [--rpc-port P] [--api-port P] [--sites FILE]
                                                         node + API + workers (+ ingest),
                                                         restarted when they die, until Ctrl-C
    wattchain node [--data DIR] [--rpc-port P]           a dev node (no --data: a fresh chain)
    wattchain api [--data DIR] [--node URL] [--port P]   the HTTP API
    wattchain workers [--data DIR] [--node URL]          relayer, scheduler, settler, indexer
    wattchain ingest --sites FILE [--node URL]           read, sign and submit meter readings
    wattchain report --data DIR --from K --to K          the clearing house's report (JSON)
    wattchain bench api [--rate R ...] [--kill api,...]  order intake under load (make loadtest),
                                                         parts killed -9 once each meanwhile
    wattchain bench chain --orders N [--json]            one interval of N orders through the
                                                         chain, cleared and settled (JSON)

Every command that takes settings also reads `--config FILE` (TOML) and WATTCHAIN_* variables
(market/settings.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from market.settings import Settings

# An editable install made before api/ existed maps only the packages it saw then; the CLI
# belongs to this checkout, so make its sibling packages importable either way.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)


def _common(p: argparse.ArgumentParser, *, node: bool = True) -> None:
    p.add_argument(
        "--config", type=Path, default=None, help="settings file, TOML (default: WATTCHAIN_CONFIG)"
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data folder (default: ./data or WATTCHAIN_DATA_DIR)",
    )
    if node:
        p.add_argument(
            "--node", default=None, help="node WebSocket URL (default ws://127.0.0.1:9944)"
        )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="wattchain", description="WattChain: a peer-to-peer electricity market"
    )
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo", help="start a dev node, the API, the workers and simulated sites; trade N intervals"
    )
    p.add_argument("--intervals", type=int, default=3)
    p.add_argument("--json", action="store_true", help="one JSON object per interval on stdout")
    p.add_argument(
        "--data", type=Path, default=None, help="data folder (default: data/demo-<time>)"
    )
    p.add_argument("--prosumers", type=int, default=2)
    p.add_argument("--consumers", type=int, default=3)
    p.add_argument(
        "--speed",
        type=float,
        default=45.0,
        help="simulated seconds per wall-clock second at the sites",
    )
    p.add_argument("-v", "--verbose", action="store_true")

    p = sub.add_parser(
        "run",
        help="node (unless --node) + API + workers (+ ingest with --sites), restarted when they"
        " die, until Ctrl-C",
    )
    _common(p)
    p.add_argument(
        "--api-port",
        "--port",
        dest="api_port",
        type=int,
        default=None,
        help="API port (default 8000; 0: a free one, printed)",
    )
    p.add_argument(
        "--rpc-port",
        type=int,
        default=None,
        help="RPC port of the node it starts (default 9944; 0: a free one, printed)",
    )
    p.add_argument(
        "--sites", type=Path, default=None, help="also run meter ingest for these sites (JSON)"
    )
    p.add_argument(
        "--restart-limit",
        type=int,
        default=None,
        help="give up when one part died this many times in a row (default 10; 0: never)",
    )

    p = sub.add_parser("node", help="run a dev node in the foreground")
    p.add_argument(
        "--config", type=Path, default=None, help="settings file, TOML (default: WATTCHAIN_CONFIG)"
    )
    p.add_argument(
        "--data", type=Path, default=None, help="keep the chain in DATA/chain (default: --tmp)"
    )
    p.add_argument(
        "--rpc-port", type=int, default=None, help="RPC port (default 9944; 0: a free one)"
    )
    p.add_argument("-v", "--verbose", action="store_true")

    p = sub.add_parser("api", help="serve the HTTP API")
    _common(p)
    p.add_argument("--host", default=None)
    p.add_argument("--port", "--api-port", dest="port", type=int, default=None)
    p.add_argument(
        "--processes", type=int, default=None, help="processes sharing the port (api_processes)"
    )

    p = sub.add_parser("workers", help="run the off-chain workers")
    _common(p)
    p.add_argument(
        "--only", default=None, help="comma-separated subset of relayer,scheduler,settler,indexer"
    )

    p = sub.add_parser(
        "ingest", help="read the meters every interval, sign and submit their readings"
    )
    _common(p)
    p.add_argument(
        "--sites",
        type=Path,
        default=None,
        help='JSON: {"sites": [{name, model, host, port, key_uri, device_id?, rated_power_w?}]}',
    )
    p.add_argument("--intervals", type=int, default=None, help="stop after this many intervals")

    p = sub.add_parser("bench", help="benchmarks of the whole market on this machine")
    bench = p.add_subparsers(dest="bench", required=True)
    p = bench.add_parser(
        "api",
        help="order intake under load: a fresh market, Locust at a target rate, every "
        "acknowledged order followed to the chain; one JSON line (make loadtest)",
    )
    _bench_common(p)
    p.add_argument("--rate", type=float, default=1_000, help="orders/s to hold (default 1000)")
    p.add_argument("--ramp", type=float, default=30, help="seconds of ramp-up (default 30)")
    p.add_argument("--hold", type=float, default=600, help="seconds held (default 600)")
    p.add_argument("--burst", type=float, default=10, help="seconds of burst before a gate")
    p.add_argument("--burst-factor", type=float, default=2, help="x the rate in the burst")
    p.add_argument(
        "--batch-share",
        type=float,
        default=0.0,
        help="share of the orders that aggregators send in POST /orders/batch (default 0)",
    )
    p.add_argument("--batch-size", type=int, default=25, help="orders per batch (default 25)")
    p.add_argument("--min-orders-per-s", type=float, default=None)
    p.add_argument("--max-p99-ms", type=float, default=None)
    p.add_argument("--max-lost", type=int, default=0)
    p.add_argument("--max-duplicated", type=int, default=0)
    p.add_argument("--max-failures", type=int, default=0)
    p.add_argument("--max-relay-lag-p99-s", type=float, default=None)
    p.add_argument("--max-relay-lag-p99-blocks", type=float, default=None)
    p.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="the API's processes (default 1: it takes about 1,400 orders/s on its core)",
    )
    p.add_argument(
        "--api-cpus",
        type=_cpu_list,
        default=None,
        help="run the API on these CPUs (e.g. 0) and the rest (node, workers, Locust) on the "
        "others, as taskset would: what the API's cores take with the load apart",
    )
    p.add_argument(
        "--kill",
        default="",
        help="parts to kill -9 once each during the hold, spread over it, e.g. api,workers,node;"
        " each must be back (restarted) or the run fails",
    )

    p = bench.add_parser(
        "chain",
        help="one interval of N orders through the chain: relay, clearing to finality, "
        "settlement, and the runtime's weight per match; one JSON line",
    )
    _bench_common(p)
    p.add_argument("--orders", type=int, required=True, help="orders in the interval")
    p.add_argument(
        "--orders-per-trader", type=int, default=100, help="orders each trader places (100)"
    )
    p.add_argument("--json", action="store_true", help="the result as one JSON line (always)")

    p = sub.add_parser(
        "report", help="print the clearing house's report for settled intervals (JSON)"
    )
    _common(p, node=False)
    p.add_argument("--from", dest="from_interval", type=int, required=True)
    p.add_argument("--to", dest="to_interval", type=int, required=True)
    p.add_argument("--account", default=None)
    return top


def _cpu_list(text: str) -> set[int]:
    """ "0", "0,1" or "0-2": a set of CPU numbers."""
    cpus: set[int] = set()
    try:
        for item in text.split(","):
            first, _, last = item.strip().partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a CPU list: 0, 0,1 or 0-2") from None
    if not cpus:
        raise argparse.ArgumentTypeError(f"{text!r} names no CPU")
    return cpus


def _bench_common(p) -> None:
    p.add_argument("--node-bin", default=None, help="wattchain-node (default: WATTCHAIN_NODE)")
    p.add_argument("--data", type=Path, default=None, help="keep the market's data folder here")


def _settings(args, **extra) -> Settings:
    return Settings.from_env(
        getattr(args, "config", None),
        data_dir=getattr(args, "data", None),
        node_url=getattr(args, "node", None),
        **extra,
    )


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        for noisy in ("websocket", "substrateinterface", "httpx", "pymodbus"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _terminate_on_sigterm() -> None:
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def cmd_demo(args) -> int:
    from .demo import run_demo

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    if args.intervals < 1:
        print("--intervals must be at least 1", file=sys.stderr)
        return 2
    _terminate_on_sigterm()
    return run_demo(
        args.intervals,
        args.data,
        as_json=args.json,
        prosumers=args.prosumers,
        consumers=args.consumers,
        speed=args.speed,
    )


def cmd_node(args) -> int:
    from .lifecycle import DataLock
    from .node import DevNode, build_binary, find_binary
    from .supervisor import exit_status

    _terminate_on_sigterm()
    settings = _settings(args, rpc_port=args.rpc_port)
    lock = node = None
    try:
        if args.data:  # one node per chain folder: a second start is refused, not half-started
            lock = DataLock.acquire(args.data, "chain", "wattchain node")
        node = DevNode(
            find_binary() or build_binary(),
            base_path=(args.data / "chain") if args.data else None,
            rpc_port=settings.rpc_port or None,
            log_path=(args.data / "logs" / "node.log") if args.data else None,
            keep_fds=(lock.fd,) if lock is not None and lock.fd is not None else (),
        )
        node.start()
        print(f"rpc: {node.url}", flush=True)
        print(f"[node] wattchain-node --dev at {node.url} (Ctrl-C stops it)", file=sys.stderr)
        while node.alive():
            time.sleep(0.5)
        returncode = node.process.returncode if node.process is not None else 1
        print(f"[node] the node exited: {exit_status(returncode)}", file=sys.stderr, flush=True)
        return 1 if returncode else 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if node is not None:
            node.stop()
        if lock is not None:
            lock.release()


def cmd_api(args) -> int:
    from .processes import serve_api

    _logging(args.verbose)
    settings = _settings(args, api_host=args.host, api_port=args.port, api_processes=args.processes)
    serve_api(settings, log_level="debug" if args.verbose else "warning")
    return 0


def cmd_workers(args) -> int:
    from offchain.workers import WORKERS, Workers

    _logging(args.verbose)
    _terminate_on_sigterm()
    settings = _settings(args)
    names = tuple(n.strip() for n in args.only.split(",")) if args.only else WORKERS
    workers = Workers(settings, names).start()
    logging.getLogger("wattchain").info(
        "workers %s on %s, data %s", ",".join(names), settings.node_url, settings.data_dir
    )
    workers.run_forever()
    return 0


def cmd_run(args) -> int:
    """The node (unless --node), the API, the workers and, with meter sites, ingest: each a
    child process, restarted when it dies (supervisor.py). One `run` per data folder."""
    from .node import build_binary, find_binary
    from .processes import Market, start_market

    _logging(args.verbose)
    _terminate_on_sigterm()
    settings = _settings(
        args,
        api_port=args.api_port,
        rpc_port=args.rpc_port,
        meter_sites=args.sites,
        restart_limit=args.restart_limit,
    )
    data = Path(settings.data_dir).resolve()
    market: Market | None = None
    try:
        # The children get the same settings file (they run in the checkout: an absolute path)
        # and verbosity; the data folder, the node and the port explicitly.
        config = args.config or os.environ.get("WATTCHAIN_CONFIG")
        extra = (["--config", str(Path(config).resolve())] if config else []) + (
            ["-v"] if args.verbose else []
        )
        market = start_market(
            data,
            holder="wattchain run",
            node_binary=None if args.node else (find_binary() or build_binary()),
            node_url=args.node,
            rpc_port=settings.rpc_port,
            api_port=settings.api_port,
            api_host=settings.api_host,
            sites=settings.meter_sites,
            extra=extra,
            restart_limit=settings.restart_limit,
            say=lambda m: print(f"[run] {m}", file=sys.stderr, flush=True),
        )
        print(f"rpc: {market.node_url}\napi: {market.api_url}", flush=True)
        print(
            f"[run] ready: node RPC {market.node_url}, API and web page {market.api_url}/ ; "
            f"logs in {data / 'logs'}; a part that dies is restarted; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        market.supervisor.run()
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError, OSError) as exc:  # busy folder, port, a part gave up
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if market is not None:
            market.stop()


def cmd_ingest(args) -> int:
    import asyncio

    from chain import Chain
    from offchain.ingest import Ingest, load_sites

    _logging(args.verbose)
    _terminate_on_sigterm()
    settings = _settings(args, meter_sites=args.sites)
    if settings.meter_sites is None:
        print("error: no meter sites: pass --sites FILE or set meter_sites", file=sys.stderr)
        return 2
    try:
        sites = load_sites(settings.meter_sites)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {settings.meter_sites}: {exc}", file=sys.stderr)
        return 2
    ingest = Ingest(
        Chain(settings.node_url).connect(),
        sites,
        Path(settings.data_dir) / "ingest",
        submitter_uri=settings.meter_submitter_uri,
    )
    try:
        asyncio.run(ingest.run(intervals=args.intervals))
    except KeyboardInterrupt:
        pass
    finally:
        print(json.dumps(ingest.queue.counts()))
    return 0


def cmd_report(args) -> int:
    from store import DataDir, report_from_index

    settings = _settings(args)
    report = report_from_index(
        DataDir(settings.data_dir).index(), args.from_interval, args.to_interval, args.account
    )
    print(json.dumps(report, indent=2))
    return 0 if report["balanced"] else 1


def cmd_bench(args) -> int:
    if args.bench == "chain":
        from .bench_chain import run_chain_bench

        result = run_chain_bench(
            args.node_bin,
            args.orders,
            orders_per_trader=args.orders_per_trader,
            data=args.data,
            log=lambda m: print(m, file=sys.stderr),
        )
        print(json.dumps(result), flush=True)
        return 0
    from .bench import Load, misses, run_api_bench

    if not 0 <= args.batch_share <= 1:
        raise SystemExit(f"--batch-share {args.batch_share} is not between 0 and 1")
    load = Load(
        args.rate,
        args.ramp,
        args.hold,
        args.burst,
        args.burst_factor,
        batch_share=args.batch_share,
        batch_size=args.batch_size,
    )
    try:
        result = run_api_bench(
            args.node_bin,
            load,
            data=args.data,
            kill=[p.strip() for p in args.kill.split(",") if p.strip()],
            api_processes=args.api_processes,
            api_cpus=args.api_cpus,
            log=lambda m: print(m, file=sys.stderr),
        )
    except (RuntimeError, TimeoutError, OSError) as exc:  # a part gave up, a busy folder
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(result), flush=True)
    missed = misses(result, {k: v for k, v in vars(args).items() if k.startswith(("min_", "max_"))})
    for miss in missed:
        print(f"[bench] below threshold: {miss}", file=sys.stderr)
    return 1 if missed else 0


COMMANDS = {
    "demo": cmd_demo,
    "run": cmd_run,
    "node": cmd_node,
    "api": cmd_api,
    "workers": cmd_workers,
    "ingest": cmd_ingest,
    "report": cmd_report,
    "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except (ValidationError, ValueError) as exc:  # a bad setting: name it, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
