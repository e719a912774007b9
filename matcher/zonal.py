"""Zonal clearing with OR-Tools: zones joined by lines of limited capacity, a grid fee per zone
pair, and bids that accept renewable energy only. Welfare net of grid fees is maximised by an
LP (GLOP); the result is integer Wh fills and one integer price per zone that pass the chain's
zonal checks (docs/chain-interface.md).

1. Aggregate. Orders become curve steps, one per (zone, class, price level). Classes are
   modelled only when some bid is renewable-only: bids are renewable-only or not, offers
   renewable or grid_mix. A (zone, class) is a node.
2. LP. A transport model: step fills feed node balances; a flow carries energy from an offer
   node to a bid node of the same zone or of a zone with a direct line (no transit), for the
   allowed class pairs (renewable -> renewable-only, renewable -> any, grid_mix -> any). A
   line's flows in one direction share its capacity_wh; a flow pays the pair's fee.
3. Integer fills. Flows are rounded down and clamped to capacities and node totals (so they
   stay feasible); each node hands its total to its orders in merit order (the tie rule of
   `auction`: price, then id). A local pass then matches any order pair left crossing by the
   rounding or left at equal limits (bid limit >= offer limit, as the uniform walk matches),
   of compatible classes in the same zone.
4. Matches. Every flow is a run of Wh; its offers and bids, in merit order, are laid along it
   and paired where they overlap, so the match list is a pure function of the flows.
5. Prices. Zones joined by a fee-free line that is congested in neither direction form one
   price area; an area's target is the uniform price rule of `auction` applied to its orders.
   The zone prices are then the least integer vector at or above the targets (capped by the
   feasible maximum) that meets every check: matched bid limit >= price >= matched offer
   limit, price[bid zone] - price[offer zone] >= fee for every used line, and, per zone,
   no unfilled bid above the price while an unfilled offer is below it. These are difference
   constraints, so that vector is unique and found by Bellman-Ford; where a renewable-only bid
   is left unserved above an unsold grid_mix offer, each such zone's price goes to one side of
   that gap, the target's side first.
6. Fallback. If no price vector fits the fills, the LP optimum needs more than one price in some
   zone: renewable energy is scarce there, or the zone sells its offers to one neighbour while
   its bids buy cheaper energy from another (with pairwise fees and no transit, its sellers and
   buyers can face different prices). Then the prices are fixed first and the LP is re-solved
   with only the orders and lines those prices allow; a zone still out of equilibrium has its
   price raised to its highest unfilled bid, and so on. Prices only rise and are bounded by the
   bids, so this ends, at worst with no trade in that zone. A few starting price vectors are
   tried (the used lines kept largest flow first while their fees can be priced, for each choice
   of gap sides; then the targets) and the valid clearing of highest welfare wins, the first on
   a tie. The result then says "fallback": true; its welfare is at most the LP bound, usually
   below.

Without lines, fees or renewable-only bids this gives the uniform clearing: same matches,
volume, welfare and price.
"""

from __future__ import annotations

import itertools
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from . import _lp
from .clearing import Clearing
from .network import Network
from .orders import Book, OrderError, show_id

NO_BOUND = 1 << 62  # stands for "no order bounds this price" in the lattice
MAX_SIDE_CHOICES = 4096  # gap-side combinations tried before the fallback
MAX_FALLBACK_ROUNDS = 10_000
ROUNDING_SLACK = 1e-6  # GLOP's values are within its tolerances of integers

Int64s: TypeAlias = npt.NDArray[np.int64]  # Wh, prices, fills, flows
Index: TypeAlias = npt.NDArray[np.intp]  # positions, as NumPy's index functions give them
Pair: TypeAlias = tuple[int, int, int, int]  # (zone index a, zone index b, fee, capacity_wh or -1)
Arc: TypeAlias = tuple[int, int, int]  # (zone index a, b, fee): p[b] - p[a] >= fee
Steps: TypeAlias = tuple[Index, Int64s, Int64s]  # (node, price, quantity) of curve steps
Left: TypeAlias = tuple[Int64s, Index, Int64s]  # (price, order index, quantity left)
ZoneStats: TypeAlias = tuple[Int64s, Int64s, Int64s, Int64s]
Settled: TypeAlias = tuple[Int64s, Int64s, Int64s, list[int]]  # flows, bid fill, offer fill, prices


class _Market:
    """A book on a network, aggregated for the LP, plus what the later stages need."""

    # One entry per flow (a pair and a class combination).
    flow_pair: Int64s
    flow_src_zone: Int64s
    flow_dst_zone: Int64s
    flow_fee: Int64s
    flow_cap: Int64s  # -1: no limit (inside a zone)
    flow_src: Int64s  # offer node
    flow_dst: Int64s  # bid node

    def __init__(self, book: Book, network: Network | None, one_pool: bool = False) -> None:
        self.book = book
        if one_pool:
            network = Network((0,), ())
            bid_zone = np.zeros(book.n_bids, np.int64)
            offer_zone = np.zeros(book.n_offers, np.int64)
        else:
            bid_zone, offer_zone = book.bid_zone, book.offer_zone
            if network is None:
                present = np.unique(np.concatenate([bid_zone, offer_zone]))
                network = Network(tuple(int(z) for z in present) or (0,), ())
        self.network = network
        self.zones: Int64s = np.array(network.zones, dtype=np.int64)
        for zone, lines, ids in (
            (bid_zone, book.bid_line, book.bid_id),
            (offer_zone, book.offer_line, book.offer_id),
        ):
            unknown = ~np.isin(zone, self.zones)
            if unknown.any():
                i = int(np.flatnonzero(unknown)[np.argmin(lines[unknown])])
                name = show_id(book.order_id(int(ids[i])))
                raise OrderError(
                    int(lines[i]),
                    f"order {name} is in zone {int(zone[i])}, which the network does not list",
                    book.where,
                )
        for qty, side in ((book.bid_qty, "bid"), (book.offer_qty, "offer")):
            if float(qty.sum(dtype=np.float64)) >= 2.0**63:
                raise OverflowError(f"total {side} quantity exceeds 2**63-1 Wh")
        n_zones = len(self.zones)
        self.bid_zi: Index = np.searchsorted(self.zones, bid_zone)
        self.offer_zi: Index = np.searchsorted(self.zones, offer_zone)
        self.nc = nc = 2 if book.bid_renewable_only.any() else 1
        self.n_nodes = n_zones * nc
        self.bid_node: Index = self.bid_zi * nc + (book.bid_renewable_only if nc == 2 else 0)
        self.offer_node: Index = self.offer_zi * nc + (book.offer_renewable if nc == 2 else 0)

        # Pairs: every zone with itself first, then each line in both directions.
        zone_index = {int(z): i for i, z in enumerate(self.zones)}
        pairs: list[Pair] = [(z, z, 0, -1) for z in range(n_zones)]
        for line in sorted(network.lines, key=lambda ln: (ln.from_zone, ln.to_zone)):
            a, b = zone_index[line.from_zone], zone_index[line.to_zone]
            pairs += [(a, b, line.fee, line.capacity_wh), (b, a, line.fee, line.capacity_wh)]
        self.pairs = pairs
        combos = [(1, 1), (1, 0), (0, 0)] if nc == 2 else [(0, 0)]
        self.n_combos = len(combos)
        flow_rows = [
            (p, a, b, fee, cap, a * nc + k, b * nc + c)
            for p, (a, b, fee, cap) in enumerate(pairs)
            for k, c in combos
        ]
        columns: Int64s = np.array(flow_rows, dtype=np.int64).reshape(-1, 7).T
        (
            self.flow_pair,
            self.flow_src_zone,
            self.flow_dst_zone,
            self.flow_fee,
            self.flow_cap,
            self.flow_src,
            self.flow_dst,
        ) = columns
        self.n_flows = len(flow_rows)

        # Merit order inside each node: the index order of a book side is its id order.
        nb, no = book.n_bids, book.n_offers
        self.bid_merit: Index = np.lexsort((np.arange(nb), -book.bid_price, self.bid_node))
        self.offer_merit: Index = np.lexsort((np.arange(no), book.offer_price, self.offer_node))
        node_range = np.arange(self.n_nodes + 1)
        self.bid_node_start: Index = np.searchsorted(self.bid_node[self.bid_merit], node_range)
        self.offer_node_start: Index = np.searchsorted(
            self.offer_node[self.offer_merit], node_range
        )
        self.bid_steps = self._steps(self.bid_merit, self.bid_node, book.bid_price, book.bid_qty)
        self.offer_steps = self._steps(
            self.offer_merit, self.offer_node, book.offer_price, book.offer_qty
        )

    @staticmethod
    def _steps(merit: Index, node: Index, price: Int64s, qty: Int64s) -> Steps:
        """(node, price, quantity) of each curve step: runs of equal price inside a node."""
        if len(merit) == 0:
            empty = np.zeros(0, np.int64)
            return np.zeros(0, np.intp), empty, empty
        n, p = node[merit], price[merit]
        new = np.ones(len(merit), dtype=bool)
        new[1:] = (n[1:] != n[:-1]) | (p[1:] != p[:-1])
        starts = np.flatnonzero(new)
        quantity: Int64s = np.add.reduceat(qty[merit], starts)
        return n[starts], p[starts], quantity

    # -- LP and integer flows -------------------------------------------------------------

    def solve_flows(self, prices: Int64s | None) -> Int64s:
        """Integer Wh per flow. With `prices` (per zone index), only orders in the money at
        their zone's price and lines whose price difference covers the fee are used."""
        nc = self.nc
        b_node, b_price, b_qty = self.bid_steps
        o_node, o_price, o_qty = self.offer_steps
        best_bid = int(b_price.max()) if len(b_price) else -1
        best_offer = int(o_price.min()) if len(o_price) else NO_BOUND
        b_ok = b_price >= best_offer
        o_ok = o_price <= best_bid
        flow_ok = self.flow_cap != 0
        if prices is not None:
            b_ok &= b_price >= prices[b_node // nc]
            o_ok &= o_price <= prices[o_node // nc]
            flow_ok &= (self.flow_src_zone == self.flow_dst_zone) | (
                prices[self.flow_dst_zone] - prices[self.flow_src_zone] >= self.flow_fee
            )
        supply = np.zeros(self.n_nodes, np.int64)
        demand = np.zeros(self.n_nodes, np.int64)
        np.add.at(supply, o_node[o_ok], o_qty[o_ok])
        np.add.at(demand, b_node[b_ok], b_qty[b_ok])
        flow_ok &= (supply[self.flow_src] > 0) & (demand[self.flow_dst] > 0)
        flows = np.zeros(self.n_flows, np.int64)
        fi = np.flatnonzero(flow_ok)
        if len(fi) == 0:
            return flows
        bi, oi = np.flatnonzero(b_ok), np.flatnonzero(o_ok)
        nb_, no_ = len(bi), len(oi)
        fcap = self.flow_cap[fi].astype(np.float64)
        fcap[self.flow_cap[fi] < 0] = np.inf
        lower = np.zeros(nb_ + no_ + len(fi))
        upper = np.concatenate([b_qty[bi].astype(np.float64), o_qty[oi].astype(np.float64), fcap])
        objective = np.concatenate([b_price[bi], -o_price[oi], -self.flow_fee[fi]]).astype(
            np.float64
        )
        col_b = np.arange(nb_)
        col_o = nb_ + np.arange(no_)
        col_f = nb_ + no_ + np.arange(len(fi))
        rows: list[_lp.Row] = []
        for node in range(self.n_nodes):
            out = col_f[self.flow_src[fi] == node]
            if len(out):
                mine = col_o[o_node[oi] == node]
                rows.append(
                    (
                        np.concatenate([mine, out]),
                        np.concatenate([np.ones(len(mine)), -np.ones(len(out))]),
                        0.0,
                        0.0,
                    )
                )
            inflow = col_f[self.flow_dst[fi] == node]
            if len(inflow):
                mine = col_b[b_node[bi] == node]
                rows.append(
                    (
                        np.concatenate([inflow, mine]),
                        np.concatenate([np.ones(len(inflow)), -np.ones(len(mine))]),
                        0.0,
                        0.0,
                    )
                )
        if self.n_combos > 1:  # class flows of one line direction share its capacity
            for pair, (a, b, _fee, cap) in enumerate(self.pairs):
                shared = col_f[self.flow_pair[fi] == pair]
                if a != b and len(shared) > 1:
                    rows.append((shared, np.ones(len(shared)), 0.0, float(cap)))
        values = _lp.maximize(lower, upper, objective, rows)
        flows[fi] = np.floor(np.maximum(values[col_f], 0.0) + ROUNDING_SLACK).astype(np.int64)
        self._clamp(flows, supply, demand)
        return flows

    def _clamp(self, flows: Int64s, supply: Int64s, demand: Int64s) -> None:
        """Make rounded flows feasible in integers: lowering a flow never breaks another limit."""

        def cut(members: Index, limit: int) -> None:
            excess = int(flows[members].sum()) - limit
            for g in members[::-1]:
                if excess <= 0:
                    break
                take = min(excess, int(flows[g]))
                flows[g] -= take
                excess -= take

        for pair, (a, b, _fee, cap) in enumerate(self.pairs):
            if a != b:
                cut(np.flatnonzero(self.flow_pair == pair), cap)
        for node in range(self.n_nodes):
            cut(np.flatnonzero(self.flow_src == node), int(supply[node]))
            cut(np.flatnonzero(self.flow_dst == node), int(demand[node]))

    # -- fills and the local pass ---------------------------------------------------------

    def fills(self, flows: Int64s) -> tuple[Int64s, Int64s]:
        """Per-order fills: each node's total goes to its orders in merit order."""
        out_total = np.zeros(self.n_nodes, np.int64)
        in_total = np.zeros(self.n_nodes, np.int64)
        np.add.at(out_total, self.flow_src, flows)
        np.add.at(in_total, self.flow_dst, flows)
        book = self.book
        return (
            self._fill_side(
                self.bid_merit, self.bid_node, self.bid_node_start, book.bid_qty, in_total
            ),
            self._fill_side(
                self.offer_merit, self.offer_node, self.offer_node_start, book.offer_qty, out_total
            ),
        )

    @staticmethod
    def _fill_side(
        merit: Index, node: Index, node_start: Index, qty: Int64s, total: Int64s
    ) -> Int64s:
        fill = np.zeros(len(merit), np.int64)
        if len(merit) == 0:
            return fill
        q = qty[merit]
        before = np.cumsum(q) - q
        base = np.append(before, 0)[node_start[:-1]]
        n = node[merit]
        fill[merit] = np.clip(total[n] - (before - base[n]), 0, q)
        return fill

    def complete_locally(self, flows: Int64s, prices: Int64s | None) -> None:
        """Match order pairs left crossing in a zone after rounding (adds to local flows)."""
        bid_fill, offer_fill = self.fills(flows)
        nc = self.nc
        for z in range(len(self.zones)):
            threshold = None if prices is None else int(prices[z])
            base_flow = z * self.n_combos  # the zone's local pair is pair number z
            if nc == 1:
                self._greedy(
                    flows,
                    self._left(z, "bid", 0, bid_fill, threshold),
                    [(self._left(z, "offer", 0, offer_fill, threshold), base_flow)],
                )
            else:
                renewable = self._left(z, "offer", 1, offer_fill, threshold)
                self._greedy(
                    flows, self._left(z, "bid", 1, bid_fill, threshold), [(renewable, base_flow)]
                )
                bid_fill, offer_fill = self.fills(flows)
                self._greedy(
                    flows,
                    self._left(z, "bid", 0, bid_fill, threshold),
                    [
                        (self._left(z, "offer", 1, offer_fill, threshold), base_flow + 1),
                        (self._left(z, "offer", 0, offer_fill, threshold), base_flow + 2),
                    ],
                )
                bid_fill, offer_fill = self.fills(flows)

    def _left(self, zone: int, side: str, cls: int, fill: Int64s, threshold: int | None) -> Left:
        """Orders of one node with quantity left, in merit order, as (price, index, left) lists."""
        node = zone * self.nc + cls
        if side == "bid":
            seg = self.bid_merit[self.bid_node_start[node] : self.bid_node_start[node + 1]]
            price, qty = self.book.bid_price[seg], self.book.bid_qty[seg]
            keep = (
                (qty > fill[seg]) if threshold is None else (qty > fill[seg]) & (price >= threshold)
            )
        else:
            seg = self.offer_merit[self.offer_node_start[node] : self.offer_node_start[node + 1]]
            price, qty = self.book.offer_price[seg], self.book.offer_qty[seg]
            keep = (
                (qty > fill[seg]) if threshold is None else (qty > fill[seg]) & (price <= threshold)
            )
        seg = seg[keep]
        return price[keep], seg, qty[keep] - fill[seg]

    @staticmethod
    def _greedy(flows: Int64s, bids: Left, offer_groups: list[tuple[Left, int]]) -> None:
        """Walk leftover bids against leftover offers (merged by price, then index) while the
        bid's limit is at or above the offer's, as the uniform walk does (the LP is indifferent
        to trades that gain nothing); only the crossing heads are looked at."""
        b_price, b_index, b_left = bids
        if len(b_price) == 0:
            return
        top = int(b_price[0])
        heads: list[tuple[int, int, int, int]] = []  # (price, order index, quantity left, flow)
        for (o_price, o_index, o_left), flow in offer_groups:
            crossing = int(np.searchsorted(o_price, top, side="right"))
            heads += [
                (int(o_price[i]), int(o_index[i]), int(o_left[i]), flow) for i in range(crossing)
            ]
        if not heads:
            return
        heads.sort()
        bottom = heads[0][0]
        crossing = int(np.searchsorted(-b_price, -bottom, side="right"))
        bid_rows = [[int(b_price[i]), int(b_left[i])] for i in range(crossing)]
        i = j = 0
        offer_left = [h[2] for h in heads]
        while i < len(bid_rows) and j < len(heads):
            if bid_rows[i][0] < heads[j][0]:
                break
            q = min(bid_rows[i][1], offer_left[j])
            flows[heads[j][3]] += q
            bid_rows[i][1] -= q
            offer_left[j] -= q
            if bid_rows[i][1] == 0:
                i += 1
            if offer_left[j] == 0:
                j += 1

    # -- matches --------------------------------------------------------------------------

    def matches(
        self, flows: Int64s, bid_fill: Int64s, offer_fill: Int64s
    ) -> tuple[Index, Index, Int64s, Index]:
        """(bid index, offer index, quantity, flow) of every match, by laying each node's
        filled orders along its flows and pairing where bid and offer runs overlap."""
        start = np.cumsum(flows) - flows
        o_start, o_len, o_idx = self._pieces(
            flows, start, self.flow_src, self.offer_merit, self.offer_node_start, offer_fill
        )
        b_start, b_len, b_idx = self._pieces(
            flows, start, self.flow_dst, self.bid_merit, self.bid_node_start, bid_fill
        )
        if len(o_start) == 0:
            no_index = np.zeros(0, np.intp)
            return no_index, no_index, np.zeros(0, np.int64), no_index
        o_order, b_order = np.argsort(o_start, kind="stable"), np.argsort(b_start, kind="stable")
        o_start, o_len, o_idx = o_start[o_order], o_len[o_order], o_idx[o_order]
        b_start, b_len, b_idx = b_start[b_order], b_len[b_order], b_idx[b_order]
        ends = np.union1d(o_start + o_len, b_start + b_len)
        begins = np.concatenate([[0], ends[:-1]])
        oi = np.searchsorted(o_start, begins, side="right") - 1
        bi = np.searchsorted(b_start, begins, side="right") - 1
        flow = np.searchsorted(start + flows, begins, side="right")
        return b_idx[bi], o_idx[oi], ends - begins, flow

    def _pieces(
        self,
        flows: Int64s,
        start: Int64s,
        flow_node: Int64s,
        merit: Index,
        node_start: Index,
        fill: Int64s,
    ) -> tuple[Int64s, Int64s, Index]:
        starts: list[Int64s] = []
        lengths: list[Int64s] = []
        owners: list[Index] = []
        for node in range(self.n_nodes):
            gs = np.flatnonzero((flow_node == node) & (flows > 0))
            if len(gs) == 0:
                continue
            seg = merit[node_start[node] : node_start[node + 1]]
            seg = seg[fill[seg] > 0]
            order_end = np.cumsum(fill[seg])
            flow_end = np.cumsum(flows[gs])
            assert order_end[-1] == flow_end[-1], "node fills equal the flows through the node"
            ends = np.union1d(order_end, flow_end)
            begins = np.concatenate([[0], ends[:-1]])
            which_order = np.searchsorted(order_end, begins, side="right")
            which_flow = np.searchsorted(flow_end, begins, side="right")
            flow_begin = flow_end - flows[gs]
            starts.append(start[gs[which_flow]] + begins - flow_begin[which_flow])
            lengths.append(ends - begins)
            owners.append(seg[which_order])
        if not starts:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.intp)
        return np.concatenate(starts), np.concatenate(lengths), np.concatenate(owners)

    # -- prices ---------------------------------------------------------------------------

    def zone_stats(self, bid_fill: Int64s, offer_fill: Int64s) -> ZoneStats:
        """Per zone: highest matched offer, lowest matched bid, highest unfilled bid, lowest
        unfilled offer (-1 or NO_BOUND where there is none)."""
        n, book = len(self.zones), self.book
        matched_offer = np.full(n, -1, np.int64)
        matched_bid = np.full(n, NO_BOUND, np.int64)
        unfilled_bid = np.full(n, -1, np.int64)
        unfilled_offer = np.full(n, NO_BOUND, np.int64)
        m = offer_fill > 0
        np.maximum.at(matched_offer, self.offer_zi[m], book.offer_price[m])
        m = bid_fill > 0
        np.minimum.at(matched_bid, self.bid_zi[m], book.bid_price[m])
        m = bid_fill < book.bid_qty
        np.maximum.at(unfilled_bid, self.bid_zi[m], book.bid_price[m])
        m = offer_fill < book.offer_qty
        np.minimum.at(unfilled_offer, self.offer_zi[m], book.offer_price[m])
        return matched_offer, matched_bid, unfilled_bid, unfilled_offer

    def line_flows(self, flows: Int64s) -> Int64s:
        per_pair = np.zeros(len(self.pairs), np.int64)
        np.add.at(per_pair, self.flow_pair, flows)
        return per_pair

    def targets(self, stats: ZoneStats, flows: Int64s) -> list[int]:
        """The uniform price rule applied to each price area (see the module docstring)."""
        matched_offer, matched_bid, unfilled_bid, unfilled_offer = stats
        n = len(self.zones)
        parent = list(range(n))

        def root(z: int) -> int:
            while parent[z] != z:
                parent[z] = parent[parent[z]]
                z = parent[z]
            return z

        per_pair = self.line_flows(flows)
        for p in range(n, len(self.pairs), 2):  # a line's two directions are adjacent
            a, b, fee, cap = self.pairs[p]
            if fee == 0 and per_pair[p] < cap and per_pair[p + 1] < cap:
                parent[root(a)] = root(b)
        result = [0] * n
        for area in {root(z) for z in range(n)}:
            members = [z for z in range(n) if root(z) == area]
            lower = [
                int(v)
                for v in np.concatenate([matched_offer[members], unfilled_bid[members]])
                if v >= 0
            ]
            upper = [
                int(v)
                for v in np.concatenate([matched_bid[members], unfilled_offer[members]])
                if v < NO_BOUND
            ]
            lo, hi = (max(lower) if lower else None), (min(upper) if upper else None)
            if lo is None:
                target = 0 if hi is None else hi
            elif hi is None or lo > hi:
                target = lo  # a gap left by renewable-only bids: their price is the high side
            else:
                target = lo + (hi - lo) // 2
            for z in members:
                result[z] = target
        return result

    def lattice_prices(
        self, stats: ZoneStats, flows: Int64s, targets: list[int]
    ) -> list[int] | None:
        """The least integer prices >= min(target, greatest feasible) that pass the checks."""
        matched_offer, matched_bid, unfilled_bid, unfilled_offer = stats
        n = len(self.zones)
        low = [max(0, int(v)) for v in matched_offer]
        high = [int(v) for v in matched_bid]
        per_pair = self.line_flows(flows)
        arcs: list[Arc] = [
            (a, b, fee)
            for p, (a, b, fee, _cap) in enumerate(self.pairs)
            if a != b and per_pair[p] > 0
        ]
        # A line with room left toward a zone caps that zone's price at the other's plus the
        # fee: congestion rent only on a full line, as the chain checks (SpreadWithoutCongestion).
        for p in range(n, len(self.pairs), 2):  # a line's two directions are adjacent
            a, b, fee, cap = self.pairs[p]
            toward_b = int(per_pair[p]) - int(per_pair[p + 1])
            if toward_b < cap:
                arcs.append((b, a, -fee))  # p[b] - p[a] <= fee
            if -toward_b < cap:
                arcs.append((a, b, -fee))  # p[a] - p[b] <= fee
        gaps = [
            z
            for z in range(n)
            if unfilled_bid[z] >= 0
            and unfilled_offer[z] < NO_BOUND
            and unfilled_bid[z] - unfilled_offer[z] >= 2
        ]
        prefer_high = {z: targets[z] > unfilled_offer[z] for z in gaps}
        tried = 0
        for flips in range(len(gaps) + 1):
            for flipped in itertools.combinations(gaps, flips):
                tried += 1
                if tried > MAX_SIDE_CHOICES:
                    return None
                lo, hi = list(low), list(high)
                for z in gaps:
                    if prefer_high[z] != (z in flipped):
                        lo[z] = max(lo[z], int(unfilled_bid[z]))
                    else:
                        hi[z] = min(hi[z], int(unfilled_offer[z]))
                top = _greatest(lo, hi, arcs)
                if top is None:
                    continue
                return _least([max(lo[z], min(targets[z], top[z])) for z in range(n)], hi, arcs)
        return None

    def fallback_starts(
        self, stats: ZoneStats, flows: Int64s, targets: list[int]
    ) -> list[list[int]]:
        """Starting prices for the fallback, best guess first: for each choice of gap sides
        (the targets' sides, then all low sides), the used lines are kept largest flow first
        while their price differences can still be met, and the least prices at or above the
        targets are taken; the clamped targets come last."""
        matched_offer, matched_bid, unfilled_bid, unfilled_offer = stats
        n = len(self.zones)
        per_pair = self.line_flows(flows)
        used = sorted(
            ((int(per_pair[p]), p) for p in range(n, len(self.pairs)) if per_pair[p] > 0),
            key=lambda fp: (-fp[0], fp[1]),
        )
        gaps = [
            z
            for z in range(n)
            if unfilled_bid[z] >= 0
            and unfilled_offer[z] < NO_BOUND
            and unfilled_bid[z] - unfilled_offer[z] >= 2
        ]
        starts: list[list[int] | None] = []
        for high_side in (
            {z: targets[z] > unfilled_offer[z] for z in gaps},
            {z: False for z in gaps},
        ):
            lo = [max(0, int(v)) for v in matched_offer]
            hi = [int(v) for v in matched_bid]
            for z in gaps:
                if high_side[z]:
                    lo[z] = max(lo[z], int(unfilled_bid[z]))
                else:
                    hi[z] = min(hi[z], int(unfilled_offer[z]))
            for z in range(n):  # a side choice that leaves no room: drop the order bounds
                if lo[z] > hi[z]:
                    lo[z], hi[z] = 0, NO_BOUND
            arcs: list[Arc] = []
            for _flow, p in used:
                a, b, fee, _cap = self.pairs[p]
                if _greatest(lo, hi, arcs + [(a, b, fee)]) is not None:
                    arcs.append((a, b, fee))
            top = _greatest(lo, hi, arcs)
            if top is not None:
                starts.append(
                    _least([max(lo[z], min(targets[z], top[z])) for z in range(n)], hi, arcs)
                )
        starts.append([max(0, t) for t in targets])
        unique: list[list[int]] = []
        for start in starts:
            if start is not None and start not in unique:
                unique.append(start)
        return unique

    def settle(self, start: list[int]) -> Settled:
        """The fallback: fixed prices, restricted LP, raise zones out of equilibrium, repeat."""
        prices = np.array(start, dtype=np.int64)
        for _ in range(MAX_FALLBACK_ROUNDS):
            flows = self.solve_flows(prices)
            self.complete_locally(flows, prices)
            bid_fill, offer_fill = self.fills(flows)
            raise_zones = self.violations(prices, bid_fill, offer_fill)
            if not raise_zones:
                return flows, bid_fill, offer_fill, [int(p) for p in prices]
            unfilled_bid = self.zone_stats(bid_fill, offer_fill)[2]
            for z in raise_zones:
                prices[z] = unfilled_bid[z]
        raise RuntimeError("zonal fallback did not settle; this is a bug")

    def welfare(self, flows: Int64s, bid_fill: Int64s, offer_fill: Int64s) -> int:
        book = self.book
        total: int = (
            sum(p * q for p, q in zip(book.bid_price.tolist(), bid_fill.tolist()) if q)
            - sum(p * q for p, q in zip(book.offer_price.tolist(), offer_fill.tolist()) if q)
            - sum(f * q for f, q in zip(self.flow_fee.tolist(), flows.tolist()) if q)
        )
        return total

    def violations(self, prices: Int64s, bid_fill: Int64s, offer_fill: Int64s) -> list[int]:
        """Zones where an unfilled bid is above the price while an unfilled offer is below it."""
        _, _, unfilled_bid, unfilled_offer = self.zone_stats(bid_fill, offer_fill)
        return [
            z
            for z in range(len(self.zones))
            if unfilled_bid[z] > prices[z] and unfilled_offer[z] < prices[z]
        ]


def _greatest(low: list[int], high: list[int], arcs: list[Arc]) -> list[int] | None:
    """Greatest p with low <= p <= high and p[b] - p[a] >= fee on every arc, or None."""
    p = list(high)
    for _ in range(len(p) + 1):
        changed = False
        for a, b, fee in arcs:
            if p[a] > p[b] - fee:
                p[a] = p[b] - fee
                changed = True
        if not changed:
            return p if all(p[z] >= low[z] for z in range(len(p))) else None
    return None


def _least(start: list[int], high: list[int], arcs: list[Arc]) -> list[int] | None:
    p = list(start)
    for _ in range(len(p) + 1):
        changed = False
        for a, b, fee in arcs:
            if p[b] < p[a] + fee:
                p[b] = p[a] + fee
                changed = True
        if not changed:
            return p if all(p[z] <= high[z] for z in range(len(p))) else None
    return None


def clear_zonal(
    book: Book, network: Network | None, pricing: str = "zonal", one_pool: bool = False
) -> Clearing:
    """Zonal clearing of a validated book. `pricing="pay-as-bid"` keeps the zonal fills and
    prices each match at its bid's limit, the seller getting that minus the pair's fee."""
    market = _Market(book, network, one_pool=one_pool)
    flows = market.solve_flows(None)
    market.complete_locally(flows, None)
    bid_fill, offer_fill = market.fills(flows)
    stats = market.zone_stats(bid_fill, offer_fill)
    targets = market.targets(stats, flows)
    prices = market.lattice_prices(stats, flows, targets)
    fallback = prices is None
    if prices is None:
        best: tuple[int, Settled] | None = None
        for start in market.fallback_starts(stats, flows, targets):
            settled = market.settle(start)
            welfare = market.welfare(*settled[:3])
            if best is None or welfare > best[0]:
                best = (welfare, settled)
        assert best is not None, "fallback_starts always ends with the clamped targets"
        flows, bid_fill, offer_fill, prices = best[1]
    return _clearing(market, flows, bid_fill, offer_fill, prices, pricing, fallback)


def _clearing(
    market: _Market,
    flows: Int64s,
    bid_fill: Int64s,
    offer_fill: Int64s,
    prices: list[int],
    pricing: str,
    fallback: bool,
) -> Clearing:
    book = market.book
    bid_idx, offer_idx, quantity, flow = market.matches(flows, bid_fill, offer_fill)
    fee = market.flow_fee[flow] if len(flow) else np.zeros(0, np.int64)
    price_of_zone = np.array(prices, dtype=np.int64)
    if pricing == "pay-as-bid":
        buyer = book.bid_price[bid_idx]
        seller = buyer - fee
    else:
        buyer = price_of_zone[market.bid_zi[bid_idx]]
        seller = price_of_zone[market.offer_zi[offer_idx]]
    margin = book.bid_price[bid_idx] - book.offer_price[offer_idx] - fee
    welfare = (
        sum(int(m) * int(q) for m, q in zip(margin.tolist(), quantity.tolist()))
        if len(quantity) and float(np.abs(margin).max()) * float(quantity.sum()) >= 2.0**62
        else int(np.dot(margin, quantity))
    )
    occurring = np.unique(np.concatenate([market.bid_zi, market.offer_zi]))
    zone_prices = (
        None
        if pricing == "pay-as-bid"
        else {int(market.zones[z]): int(prices[z]) for z in occurring.tolist()}
    )
    return Clearing(
        mechanism=pricing,
        price=None,
        zone_prices=zone_prices,
        volume_wh=int(quantity.sum()),
        welfare=welfare,
        bid=book.bid_id[bid_idx],
        offer=book.offer_id[offer_idx],
        quantity_wh=quantity.astype(np.int64),
        buyer_price=buyer.astype(np.int64),
        seller_price=seller.astype(np.int64),
        fallback=fallback,
        labels=book.labels,
    )
