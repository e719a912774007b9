"""`wattchain bench chain --orders N`: one interval of N orders through the chain, end to end.

It starts a market of its own (a fresh dev node and the workers, no API: the chain is what is
measured) on free loopback ports, registers and funds the traders in one batch of extrinsics
(half buy, half sell; many orders each), signs N orders for one interval (half bids, half
offers, every bid priced above every offer, so they all cross), puts them in the relay log in
one commit, and lets the relayer take them to the chain. Then it follows the interval: the
scheduler's clearing, to finality, and the settler's settlement. Its last line is one JSON
object:

- `orders`, `on_chain` and `refused` (by the chain's error, e.g. `IntervalFull` above
  `MaxOrdersPerInterval`); `orders_on_chain_per_s`, from the first order logged to the last
  one on chain;
- `matches`, `cleared`, `voided` and `clearing_error` (the scheduler's last word when the
  chain did not take its clearing); `pages` (the pages its clearing was sent in; 0 if none);
- `gate_to_final_ms` and `gate_to_final_blocks`, from gate closure to the clearing seen in a
  finalized block; `settled`, `settle_blocks` (from the clearing's block) and
  `settled_in_next_interval` (before the end of the interval after this one);
- `match_weight_ns`, the runtime's ref time for one more match in `submit_clearing` between
  traders already counted (its bid and offer added to the book), `trader_weight_ns` for one
  more trader in its book (who pays, is paid or gets a hold back, once),
  `book_order_weight_ns` for one more order in its book that no match names, and
  `transfer_weight_ns`, that of `balances.transfer_keep_alive`: the calls' own weights as the
  runtime's `query_call_info` gives them; `match_to_transfer` is the ratio of the first and the
  last.

A benchmark, not a test: `tests/wattchain/test_bench_chain.py` runs a small N so the path
stays tested. The data folder, with the node's chain, is kept when `--data` is given.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import time
from pathlib import Path

from api.client import fresh_client_order_id
from chain import Chain, Newcomer, onboard
from market import MarketParams, OrderSpec, keypair, now_ms, sign_order
from market.settings import Settings
from store import DataDir, OrderLog, queries

from .node import DevNode
from .processes import start_workers

ORDERS_PER_TRADER = 100
# How fast the relayer is assumed to take orders to the chain when choosing the interval: the
# orders must all be on chain before its gate. Cautious (it measures about 1,000), so a slow run
# is measured, not lost.
ASSUMED_ORDERS_PER_S = 300
SETUP_S = 20  # the workers' start and the first relayed batch
VOID_WAIT_S = 300


def run_chain_bench(
    node_binary: str | None,
    orders: int,
    *,
    orders_per_trader: int = ORDERS_PER_TRADER,
    data: Path | None = None,
    log=print,
) -> dict:
    if orders < 2:
        raise ValueError("--orders must be at least 2: one bid and one offer")
    keep = data is not None
    root = Path(data) if data else Path(tempfile.mkdtemp(prefix="wattchain-chainbench-"))
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    # A kept folder keeps the chain too: its state (a full interval's book) is what
    # `make weights` measures the database on.
    node = DevNode(
        node_binary, base_path=root / "chain" if keep else None, log_path=logs / "node.log"
    ).start()
    workers = None
    try:
        chain = Chain(node.url).connect()
        params = chain.market_params()
        traders = max(2, math.ceil(orders / orders_per_trader))
        traders += traders % 2  # as many buyers as sellers
        uris = [f"//WattChain/chainbench/{i}" for i in range(traders)]
        # A buyer's bids hold their cost: fund each for its share of bids at the top price.
        bids_each = math.ceil(orders / 2 / (traders // 2))
        fund = 2 * bids_each * params.utility_tariff_ticks * 2_000
        log(f"[bench] registering and funding {traders} traders")
        settings = Settings()
        onboard(
            chain,
            keypair(settings.operator_uri),
            keypair(settings.distributor_uri),
            [Newcomer(keypair(uri).ss58_address, 0, fund) for uri in uris],
            timeout_s=300,
        )
        lead_ms = (SETUP_S + orders / ASSUMED_ORDERS_PER_S) * 1000
        interval = params.first_open_interval(now_ms(), int(lead_ms))
        gate_ms = params.gate_closure(interval)
        signed_at = time.monotonic()
        signed = _sign(chain, params, uris, interval, orders)
        log(
            f"[bench] signed {orders} orders for interval {interval} in "
            f"{time.monotonic() - signed_at:.1f} s; gate in {(gate_ms - now_ms()) / 1000:.0f} s"
        )
        workers = start_workers(root, node.url, logs / "workers.log")
        _wait_for_relayer(logs / "workers.log", 60)
        data_dir = DataDir(root)
        log_db = OrderLog(data_dir.orders())
        logged_ms = now_ms()
        log_db.together(
            lambda: [log_db.append_order(s.owner, s.spec, "0x" + s.signature.hex()) for s in signed]
        )
        relayed = _follow_relay(log_db, gate_ms + 30_000)
        log(f"[bench] {relayed['on_chain']} orders on chain; waiting for the clearing")
        outcome = _follow_interval(chain, data_dir, params, interval, gate_ms)
        span_s = (relayed["last_on_chain_ms"] - logged_ms) / 1000 if relayed["on_chain"] else 0
        return {
            "orders": orders,
            "traders": traders,
            "interval": interval,
            "on_chain": relayed["on_chain"],
            "refused": relayed["refused"],
            "orders_on_chain_per_s": round(relayed["on_chain"] / span_s, 1) if span_s else None,
            **outcome,
            **_weights_ns(chain, interval),
        }
    finally:
        if workers is not None:
            workers.stop()
        node.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _sign(chain: Chain, params: MarketParams, uris: list[str], interval: int, n: int) -> list:
    """n orders for the interval: even ones bids from the buyers, odd ones offers from the
    sellers, each trader in turn; bids at or above the mid price, offers at or below it."""
    keys = [keypair(uri) for uri in uris]
    buyers, sellers = keys[0::2], keys[1::2]
    lo, hi = params.feed_in_ticks, params.utility_tariff_ticks
    mid = (lo + hi) // 2
    rng = random.Random(1)
    out = []
    for i in range(n):
        bid = i % 2 == 0
        group = buyers if bid else sellers
        spec = OrderSpec(
            client_order_id=fresh_client_order_id(),
            interval=interval,
            side="bid" if bid else "offer",
            quantity_wh=rng.randint(100, 2_000),
            price_ticks=rng.randint(mid, hi) if bid else rng.randint(lo, mid),
            source="grid_mix",
        )
        out.append(sign_order(group[(i // 2) % len(group)], chain.genesis_hash, spec))
    return out


def _wait_for_relayer(log_path: Path, timeout_s: float) -> None:
    """Wait until the workers' log says the relayer runs, so its start-up is not counted in
    the chain's pace."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log_path.exists() and "relayer running" in log_path.read_text():
            return
        time.sleep(0.2)
    raise TimeoutError(f"the relayer did not start within {timeout_s} s; see {log_path}")


def _follow_relay(log: OrderLog, until_ms: int) -> dict:
    """Wait until no logged order waits for the chain (or until_ms); how many reached it, when
    the last did, and the chain's reasons for the rest."""
    while log.unrelayed()[0] and now_ms() < until_ms:
        time.sleep(0.5)
    counts = log.counts()
    return {
        "on_chain": counts.get("onchain", 0),
        "refused": log.refusals(),
        "last_on_chain_ms": log.last_on_chain_ms(),
    }


def _follow_interval(chain: Chain, data: DataDir, params, interval: int, gate_ms: int) -> dict:
    """The interval's fate as the index sees it (finalized blocks only): cleared, or voided
    (a big book is voided over many blocks: up to VOID_WAIT_S past its end), then settled."""
    index, ops = data.index(), data.ops()
    deadline_ms = params.interval_end(interval) + VOID_WAIT_S * 1000
    clearing = voided = None
    final_ms = None
    while now_ms() < deadline_ms:
        clearing = queries.clearing(index, interval)
        voided = queries.voided(index, interval)
        if clearing is not None or voided is not None:
            final_ms = now_ms()
            break
        time.sleep(0.5)
    gate_block = queries.first_block_at(index, gate_ms)
    # The chain's refusal of the scheduler's clearing, if any (later attempts may be voiding).
    refusal = queries.clearing_refusal(ops, interval)
    out = {
        "matches": clearing["matches"] if clearing else 0,
        "cleared": clearing is not None,
        "voided": voided is not None,
        "clearing_error": None if clearing else refusal,
        "pages": progress["pages"]
        if (progress := queries.clearing_progress(index, interval))
        else 0,
        "gate_to_final_ms": final_ms - gate_ms if clearing and final_ms else None,
        "gate_to_final_blocks": (
            clearing["block_number"] - gate_block if clearing and gate_block else None
        ),
        "settled": False,
        "settle_blocks": None,
        "settled_in_next_interval": False,
    }
    if clearing is None:
        return out
    deadline_ms = params.interval_end(interval) + 3 * params.interval_ms
    while now_ms() < deadline_ms:
        settled_in = queries.settled_in_block(index, interval)
        if settled_in is not None:
            out["settled"] = True
            out["settle_blocks"] = settled_in - clearing["block_number"]
            # The target: settled before the interval after this one ends.
            after_next = queries.first_block_at(index, params.interval_end(interval + 1))
            out["settled_in_next_interval"] = after_next is None or settled_in < after_next
            break
        time.sleep(0.5)
    return out


def _weights_ns(chain: Chain, interval: int) -> dict:
    """The runtime's ref time, in ns, of one more match in `submit_clearing` between traders
    already counted, with its bid and offer in the book, of one more trader in the book (the
    matches and the book held fixed), of one more order in its book that no match names, and
    of a plain transfer: the calls' own weights as the runtime gives them (`query_call_info`),
    the very ones the chain charges."""
    match = {"bid": 0, "offer": 1, "quantity_wh": 1, "buyer_price": 1, "seller_price": 1}

    def clearing(matches: int, book: int, traders: int = 2) -> int:
        params = Chain.clearing_params(
            interval, "uniform", matches, [], [match] * matches, book, traders
        )
        return chain.call_ref_time("submit_clearing", params)

    per_match = (clearing(101, 202) - clearing(1, 2)) // 100
    per_trader = (clearing(1, 1_002, 202) - clearing(1, 1_002, 2)) // 200
    per_order = (clearing(1, 1_002) - clearing(1, 2)) // 1_000
    transfer = chain.call_ref_time(
        "transfer_keep_alive",
        {"dest": keypair("//Bob").ss58_address, "value": 10**6},
        module="Balances",
    )
    return {
        "match_weight_ns": per_match // 1_000,
        "trader_weight_ns": per_trader // 1_000,
        "book_order_weight_ns": per_order // 1_000,
        "transfer_weight_ns": transfer // 1_000,
        "match_to_transfer": round(per_match / transfer, 2),
    }
