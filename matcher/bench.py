"""Benchmark of the matcher (a benchmark, not a test): `python -m matcher.bench`.

In one run, on the same generated books, it prints medians and ratios for the Cython clearing
with its full match list, the vectorised NumPy reference, the plain-Python reference (at 1e5
per side or below only: it is far too slow beyond), NumPy's argsort of both sides (the floor:
a clearing cannot beat sorting), and the zonal LP clearing (10 zones, 20 lines).
`--quick` runs smaller sizes for a smoke check.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from . import clear_arrays, zonal
from .clearing import Clearing
from .network import Line, Network
from .orders import Book
from .reference import clear_numpy, clear_python

PLAIN_PYTHON_MAX = 100_000

Int64s: TypeAlias = npt.NDArray[np.int64]
# bid_price, bid_qty, offer_price, offer_qty
Arrays: TypeAlias = tuple[Int64s, Int64s, Int64s, Int64s]


def make_book(
    n: int, seed: int, zones: int = 1, renewable_only_share: float = 0.0
) -> Arrays | Book:
    """n bids and n offers: prices in ticks per kWh around 600 (bids) and 500 (offers), so
    about half of each side trades; quantities 1..10 kWh. With zones, the low zones have the
    cheaper generation, so energy flows towards the high zones and some lines congest."""
    rng = np.random.default_rng(seed)
    bid_price = np.clip(rng.normal(600, 150, n).round(), 1, 2000).astype(np.int64)
    offer_price = np.clip(rng.normal(500, 150, n).round(), 1, 2000).astype(np.int64)
    bid_qty = rng.integers(1, 10_000, n, dtype=np.int64)
    offer_qty = rng.integers(1, 10_000, n, dtype=np.int64)
    if zones == 1:
        return bid_price, bid_qty, offer_price, offer_qty
    bid_zone = rng.integers(0, zones, n, dtype=np.int64)
    offer_zone = rng.integers(0, zones, n, dtype=np.int64)
    offer_price = offer_price + 8 * offer_zone  # cheaper generation in the low zones
    return Book.from_arrays(
        bid_price,
        bid_qty,
        offer_price,
        offer_qty,
        bid_zone,
        offer_zone,
        rng.random(n) < renewable_only_share,
        rng.random(n) < 0.4,
    )


def make_network(zones: int, lines: int, capacity_wh: int, seed: int) -> Network:
    """A ring (so every zone is reached) plus random chords, fees 0..3 ticks per kWh."""
    rng = np.random.default_rng(seed)
    pairs = {tuple(sorted((z, (z + 1) % zones))) for z in range(zones)}
    while len(pairs) < lines:
        a, b = sorted(rng.choice(zones, 2, replace=False).tolist())
        pairs.add((a, b))
    return Network.from_dict(
        {
            "zones": list(range(zones)),
            "lines": [
                {"from": a, "to": b, "capacity_wh": capacity_wh, "fee": int(rng.integers(0, 4))}
                for a, b in sorted(pairs)
            ],
        }
    )


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_double_auction(n: int, repeats: int) -> dict[str, Any]:
    arrays = make_book(n, seed=n)
    assert not isinstance(arrays, Book), "one zone: the four arrays"
    bp, bq, op, oq = arrays
    result = clear_arrays(bp, bq, op, oq)
    ref = clear_numpy(bp, bq, op, oq)
    assert np.array_equal(result.bid_index, ref[0]) and np.array_equal(result.quantity_wh, ref[2])
    row: dict[str, Any] = {
        "n": n,
        "matches": len(result.quantity_wh),
        "argsort": median_time(lambda: (np.argsort(bp), np.argsort(op)), repeats),
        "argsort_stable": median_time(
            lambda: (np.argsort(bp, kind="stable"), np.argsort(op, kind="stable")), repeats
        ),
        "cython": median_time(lambda: clear_arrays(bp, bq, op, oq), repeats),
        "numpy": median_time(lambda: clear_numpy(bp, bq, op, oq), max(1, repeats // 2)),
        "python": None,
    }
    if n <= PLAIN_PYTHON_MAX:
        lists = (bp.tolist(), bq.tolist(), op.tolist(), oq.tolist())
        assert clear_python(*lists)[2] == result.quantity_wh.tolist()
        row["python"] = median_time(lambda: clear_python(*lists), 1)
    return row


def bench_zonal(n: int, repeats: int) -> dict[str, Any]:
    book = make_book(n, seed=n + 1, zones=10, renewable_only_share=0.05)
    assert isinstance(book, Book), "zones: a Book"
    network = make_network(10, 20, capacity_wh=n * 40, seed=n)

    def lp_only() -> None:
        zonal._Market(book, network).solve_flows(None)

    clearing = zonal.clear_zonal(book, network)
    congested = sum(
        1 for line in network.lines if _line_flow(book, clearing, line) >= line.capacity_wh
    )
    assert clearing.zone_prices is not None, "a zonal clearing has zone prices"
    return {
        "n": n,
        "build_solve": median_time(lp_only, repeats),
        "full": median_time(lambda: zonal.clear_zonal(book, network), repeats),
        "matches": len(clearing.quantity_wh),
        "volume_wh": clearing.volume_wh,
        "fallback": clearing.fallback,
        "congested": congested,
        "prices": sorted(set(clearing.zone_prices.values())),
    }


def _line_flow(book: Book, clearing: Clearing, line: Line) -> int:
    """Wh over the busier direction of a line, from the match list."""
    bid_zone = dict(zip(book.bid_id.tolist(), book.bid_zone.tolist()))
    offer_zone = dict(zip(book.offer_id.tolist(), book.offer_zone.tolist()))
    moved: dict[tuple[int, int], int] = {}
    for b, o, q in zip(
        clearing.bid.tolist(), clearing.offer.tolist(), clearing.quantity_wh.tolist()
    ):
        key = (offer_zone[o], bid_zone[b])
        moved[key] = moved.get(key, 0) + q
    return max(
        moved.get((line.from_zone, line.to_zone), 0), moved.get((line.to_zone, line.from_zone), 0)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m matcher.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    args = parser.parse_args(argv)
    sizes = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    zonal_sizes = (1_000, 10_000) if args.quick else (10_000, 100_000)
    print(
        f"matcher benchmark: {platform.processor() or platform.machine()}, numpy {np.__version__}, "
        f"medians in ms"
    )
    print(
        "\nDouble auction (uniform price, full match list), n bids + n offers, prices ~N(600|500, 150)"
    )
    print(
        f"{'n/side':>9} {'matches':>9} {'argsort':>9} {'stable':>9} {'cython':>9} {'numpy':>9} "
        f"{'python':>9}  cython/floor  numpy/cython  python/cython"
    )
    for n in sizes:
        r = bench_double_auction(n, repeats=7 if n <= 100_000 else 5)
        floor = min(r["argsort"], r["argsort_stable"])
        python = f"{r['python'] * 1e3:9.1f}" if r["python"] is not None else f"{'(skipped)':>9}"
        py_ratio = (
            f"{r['python'] / r['cython']:13.1f}x" if r["python"] is not None else f"{'-':>14}"
        )
        print(
            f"{n:>9,} {r['matches']:>9,} {r['argsort'] * 1e3:9.1f} {r['argsort_stable'] * 1e3:9.1f} "
            f"{r['cython'] * 1e3:9.1f} {r['numpy'] * 1e3:9.1f} {python}  {r['cython'] / floor:11.2f}x "
            f"{r['numpy'] / r['cython']:12.1f}x {py_ratio}"
        )
    print(
        "floor = the faster of NumPy's default and stable argsort of both sides; plain Python runs at "
        f"{PLAIN_PYTHON_MAX:,} per side or fewer only"
    )
    print(
        "\nZonal LP clearing: 10 zones, 20 lines, fees 0..3, 5% renewable-only bids, 40% renewable offers"
    )
    print(
        f"{'n/side':>9} {'build+solve':>12} {'full':>9} {'matches':>9} {'congested':>10} {'fallback':>9}  zone prices"
    )
    for n in zonal_sizes:
        r = bench_zonal(n, repeats=3)
        print(
            f"{n:>9,} {r['build_solve'] * 1e3:12.1f} {r['full'] * 1e3:9.1f} {r['matches']:>9,} "
            f"{r['congested']:>6}/20 {str(r['fallback']):>9}  {r['prices'][0]}..{r['prices'][-1]}"
        )
    print(
        "build+solve = aggregation into curve steps, LP model and GLOP; full = also rounding, prices "
        "and the match list"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
