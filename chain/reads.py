"""The pallet's storage as plain Python: market parameters, participants, orders, clearings,
settlement lines, meters and balances."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from substrateinterface.utils.hasher import blake2_128_concat, two_x64_concat, xxh128

from market import MarketParams, OrderSpec, from_chain_name, public_key, ss58, to_chain_name
from market.clearinghouse import SettlementLine, Trade, build_report

from .connection import PALLET, ChainConnection
from .events import read_compact

# An order's SCALE bytes: owner (32), `OrderSpec` (37), status (1, in this order of variants).
ORDER_BYTES = 70
ORDER_STATUSES = ("open", "cancelled")
# An order id is its interval in the high bits and its slot in the interval's book in the low
# `SLOT_BITS` (the pallet's `order_id`); the slot's book page is `slot // BookPageSize`.
SLOT_BITS = 20
# A `Match`'s SCALE bytes: bid, offer, quantity, buyer's and seller's price, a u64 each.
MATCH_BYTES = 40
# `System.Account`: nonce, consumers, providers, sufficients (u32 each), then pallet_balances'
# AccountData: free, reserved, frozen, flags (u128 each).
ACCOUNT_PREFIX = xxh128(b"System") + xxh128(b"Account")
ACCOUNT_INFO_BYTES = 16 + 4 * 16


def _fixed_items(value: str, size: int, what: str) -> bytes:
    """The items of a SCALE `Vec` of `size`-byte items, from its storage value in hex: what
    follows the compact count, checked to hold exactly that many."""
    data = bytes.fromhex(value[2:])
    count, at = read_compact(data, 0)
    if len(data) != at + count * size:
        raise ValueError(f"{what} does not decode")
    return data[at:]


def order_id(interval: int, slot: int) -> int:
    return interval << SLOT_BITS | slot


def order_place(order_id: int) -> tuple[int, int]:
    """An order id's interval and slot."""
    return order_id >> SLOT_BITS, order_id & ((1 << SLOT_BITS) - 1)


@dataclass(frozen=True)
class ChainOrder:
    order_id: int
    owner: str
    spec: OrderSpec
    # "open" | "cancelled": what the interval's clearing or voiding did to an open order is
    # the interval's record (`clearing`, `Voided`), not the order's.
    status: str

    def matcher_dict(self) -> dict:
        """The order as matcher.clear_orders takes it."""
        return {
            "id": self.order_id,
            "side": self.spec.side,
            "quantity_wh": self.spec.quantity_wh,
            "price": self.spec.price_ticks,
            "zone": self.spec.zone,
            "source": self.spec.source,
            "renewable_only": self.spec.renewable_only,
        }


@dataclass(frozen=True)
class ChainMatch:
    bid: int
    offer: int
    quantity_wh: int
    buyer_price: int
    seller_price: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ChainClearing:
    interval: int
    mechanism: str
    volume_wh: int
    match_count: int
    submitter: str
    block_number: int
    zone_prices: list[tuple[int, int]]
    matches: list[ChainMatch]
    pages: int = 1  # the pages it was sent in


@dataclass(frozen=True)
class GridLine:
    """A line between zones `a < b`: up to `capacity_wh` net per interval either way, for
    `fee_ticks` per kWh."""

    a: int
    b: int
    capacity_wh: int
    fee_ticks: int


@dataclass(frozen=True)
class Balance:
    free: int
    reserved: int  # includes bid holds
    frozen: int

    @property
    def total(self) -> int:
        return self.free + self.reserved


class MarketReads(ChainConnection):
    """Typed reads of the EnergyTrading pallet (at the best block, or at `block_hash`)."""

    def market_params(
        self, block_hash: str | None = None, interval: int | None = None
    ) -> MarketParams:
        """The latest parameters, or those that govern `interval`: a change applies only to
        intervals whose gate was still open (`ParamsFrom`), earlier ones keep theirs
        (`EarlierParams`)."""
        latest = MarketParams.from_chain(self.query(PALLET, "Params", block_hash=block_hash))
        if interval is None or interval >= int(
            self.query(PALLET, "ParamsFrom", block_hash=block_hash)
        ):
            return latest
        earlier = [
            (int(start), MarketParams.from_chain(p))
            for start, p in self.query(PALLET, "EarlierParams", block_hash=block_hash)
        ]
        governing = [p for start, p in earlier if start <= interval]
        # Older than any set kept: its data is pruned, and the oldest set is the best answer.
        return governing[-1] if governing else earlier[0][1] if earlier else latest

    def grid(self, block_hash: str | None = None, *, interval: int | None = None) -> list[GridLine]:
        """The grid's lines: energy crosses zones only over one of them. The latest grid
        (`Grid`), or with `interval` the one that governs it, which its gate closed under (a
        change after that applies from a later interval: `GridFrom`, `EarlierGrids`)."""
        lines = None
        if interval is not None and interval < int(
            self.query(PALLET, "GridFrom", block_hash=block_hash) or 0
        ):
            starts = [
                int(s) for s in self.query(PALLET, "EarlierGridStarts", block_hash=block_hash)
            ]
            governing = [s for s in starts if s <= interval] or starts[:1]
            if governing:
                lines = self.query(PALLET, "EarlierGrids", [governing[-1]], block_hash=block_hash)
        if lines is None:
            lines = self.query(PALLET, "Grid", block_hash=block_hash)
        return [
            GridLine(*(int(line[k]) for k in ("a", "b", "capacity_wh", "fee_ticks")))
            for line in lines
        ]

    def participant_zone(self, account: str, block_hash: str | None = None) -> int | None:
        v = self.query(PALLET, "Participants", [ss58(account)], block_hash=block_hash)
        return None if v is None else int(v["zone"])

    def block_ms(self) -> int:
        """The chain's block time in ms: Aura's slot, twice the timestamp's minimum period
        (the runtime's `MinimumPeriodTimesTwo`)."""
        return 2 * int(self.constant("Timestamp", "MinimumPeriod"))

    def meters_of_source(self, account: str, source: str, block_hash: str | None = None) -> int:
        """How many accredited meters of `account` measure `source` (solar, wind, ...): a
        renewable offer needs one."""
        v = self.query(
            PALLET, "MeterSources", [ss58(account), to_chain_name(source)], block_hash=block_hash
        )
        return int(v or 0)

    def participants(self, block_hash: str | None = None) -> dict[str, int]:
        return {
            ss58(k): int(v["zone"])
            for k, v in self.query_map(PALLET, "Participants", block_hash=block_hash)
        }

    def distributor(self, block_hash: str | None = None) -> str | None:
        v = self.query(PALLET, "Distributor", block_hash=block_hash)
        return None if v is None else ss58(v)

    def market_operator(self, block_hash: str | None = None) -> str | None:
        v = self.query(PALLET, "MarketOperator", block_hash=block_hash)
        return None if v is None else ss58(v)

    def book_len(self, interval: int, block_hash: str | None = None) -> int:
        """How many orders the interval's book holds, cancelled ones included."""
        return int(self.query(PALLET, "BookLen", [interval], block_hash=block_hash) or 0)

    _book_page_size: int | None = None
    _max_matches_per_page: int | None = None

    def max_matches_per_page(self) -> int:
        """Matches in one page of a clearing (the pallet's `MaxMatchesPerPage`), read once."""
        if self._max_matches_per_page is None:
            self._max_matches_per_page = int(self.constant(PALLET, "MaxMatchesPerPage"))
        return self._max_matches_per_page

    def book_page_size(self) -> int:
        """Orders in a book page (the pallet's `BookPageSize`), read once."""
        if self._book_page_size is None:
            self._book_page_size = int(self.constant(PALLET, "BookPageSize"))
        return self._book_page_size

    def orders(self, order_ids: Sequence[int], block_hash: str | None = None) -> list[ChainOrder]:
        """The orders that exist among `order_ids`, in their order: a read per book page they
        sit in (`_book_pages`)."""
        size = self.book_page_size()
        places = [order_place(i) for i in order_ids]
        pages = self._book_pages(sorted({(k, slot // size) for k, slot in places}), block_hash)
        found = []
        for interval, slot in places:
            page_orders = pages.get((interval, slot // size), [])
            if slot % size < len(page_orders):
                found.append(page_orders[slot % size])
        return found

    def order(self, order_id: int, block_hash: str | None = None) -> ChainOrder | None:
        found = self.orders([order_id], block_hash)
        return found[0] if found else None

    def orders_of_interval(self, interval: int, block_hash: str | None = None) -> list[ChainOrder]:
        """Every order of the interval's book (any status), in placement order."""
        keys = [
            (interval, p)
            for p in range(-(-self.book_len(interval, block_hash) // self.book_page_size()))
        ]
        pages = self._book_pages(keys, block_hash)
        return [o for key in keys for o in pages.get(key, [])]

    def _book_pages(
        self, keys: Sequence[tuple[int, int]], block_hash: str | None
    ) -> dict[tuple[int, int], list[ChainOrder]]:
        """Book pages by (interval, page), read raw and decoded by the orders' fixed layout
        (a SCALE compact count, then `ORDER_BYTES` per order): the generic decoder took 15 s
        for a book of 10,000, most of the time from gate closure to a clearing."""
        prefix = xxh128(PALLET.encode()) + xxh128(b"BookPages")
        storage_keys = [
            "0x"
            + (
                prefix
                + two_x64_concat(k.to_bytes(8, "little"))
                + two_x64_concat(p.to_bytes(4, "little"))
            ).hex()
            for k, p in keys
        ]
        # 200 pages of 18 KB a request: 7 MB in hex (a full book of 200,000 orders is 782).
        raw = self._raw_values(storage_keys, block_hash, per_request=200)
        size = self.book_page_size()
        owners: dict[bytes, str] = {}
        pages = {}
        for (interval, page), key in zip(keys, storage_keys):
            value = raw.get(key)
            if value is None:
                continue
            body = _fixed_items(value, ORDER_BYTES, f"book page {page} of interval {interval}")
            orders = []
            for i in range(len(body) // ORDER_BYTES):
                entry = body[i * ORDER_BYTES : (i + 1) * ORDER_BYTES]
                if entry[-1] >= len(ORDER_STATUSES):
                    raise ValueError(f"order {i} of book page {page} has an unknown status")
                owner = owners.get(entry[:32]) or owners.setdefault(entry[:32], ss58(entry[:32]))
                spec = OrderSpec.decode(entry[32:69])
                orders.append(
                    ChainOrder(
                        order_id(interval, page * size + i),
                        owner,
                        spec,
                        ORDER_STATUSES[entry[69]],
                    )
                )
            pages[(interval, page)] = orders
        return pages

    def client_order_id(
        self, owner: str, client_order_id: int, block_hash: str | None = None
    ) -> int | None:
        return self.client_order_ids([(owner, client_order_id)], block_hash)[0]

    def client_order_ids(
        self, keys: Sequence[tuple[str, int]], block_hash: str | None = None
    ) -> list[int | None]:
        """The order ids of many (owner, client order id) at once, read raw (`ClientOrders`:
        Blake2_128Concat owner, Twox64Concat id, a u64): the relayer reads a landed batch's
        this way instead of decoding its block's events."""
        prefix = xxh128(PALLET.encode()) + xxh128(b"ClientOrders")
        owners: dict[str, bytes] = {}
        storage_keys = []
        for owner, cid in keys:
            key = owners.get(owner)
            if key is None:
                raw_owner = public_key(owner)
                key = owners[owner] = blake2_128_concat(raw_owner)
            storage_keys.append(
                "0x" + (prefix + key + two_x64_concat(cid.to_bytes(8, "little"))).hex()
            )
        raw = self._raw_values(storage_keys, block_hash)
        out: list[int | None] = []
        for key in storage_keys:
            value = raw.get(key)
            out.append(
                None if value is None else int.from_bytes(bytes.fromhex(value[2:]), "little")
            )
        return out

    def _raw_values(
        self, keys: Sequence[str], block_hash: str | None, per_request: int = 1_000
    ) -> dict[str, str | None]:
        """Storage values (0x hex, None when absent) of many hex keys, `per_request` keys a
        round trip: a node answers at most 15 MB, and a value takes twice its size in hex."""
        raw: dict[str, str | None] = {}
        for start in range(0, len(keys), per_request):
            batch = keys[start : start + per_request]
            for change_set in self.rpc("state_queryStorageAt", [batch, block_hash]) or []:
                raw.update((k, v) for k, v in change_set["changes"])
        return raw

    def clearing(self, interval: int, block_hash: str | None = None) -> ChainClearing | None:
        summary = self.query(PALLET, "Clearings", [interval], block_hash=block_hash)
        if summary is None:
            return None
        matches = self.clearing_matches(interval, int(summary["pages"]), block_hash)
        prices = self.query(PALLET, "ClearingPrices", [interval], block_hash=block_hash) or []
        return ChainClearing(
            interval=interval,
            mechanism=from_chain_name(summary["mechanism"]),
            volume_wh=int(summary["volume_wh"]),
            match_count=int(summary["match_count"]),
            pages=int(summary["pages"]),
            submitter=ss58(summary["submitter"]),
            block_number=int(summary["block"]),
            zone_prices=[(int(p["zone"]), int(p["price"])) for p in prices],
            matches=matches,
        )

    def clearing_matches(
        self, interval: int, pages: int, block_hash: str | None = None
    ) -> list[ChainMatch]:
        """The matches of the interval's clearing, from the `pages` pages it was sent in
        (`ClearingPages`), in order: the trades' record, read raw and decoded by the fixed
        layout of a `Match` (a SCALE compact count, then five u64 each), since a city's
        clearing has 100,000 of them."""
        prefix = xxh128(PALLET.encode()) + xxh128(b"ClearingPages")
        key = two_x64_concat(interval.to_bytes(8, "little"))
        matches: list[ChainMatch] = []
        for page in range(pages):
            # A page a request: a page is 400 KB, and a node answers at most 15 MB (in hex).
            storage_key = "0x" + (prefix + key + two_x64_concat(page.to_bytes(4, "little"))).hex()
            value = self._raw_values([storage_key], block_hash).get(storage_key)
            if value is None:
                continue
            body = _fixed_items(value, MATCH_BYTES, f"clearing page {page} of interval {interval}")
            matches.extend(ChainMatch(*m) for m in struct.iter_unpack("<5Q", body))
        return matches

    def pending_clearing(self, interval: int, block_hash: str | None = None) -> dict | None:
        """The interval's registered clearing still being sent (`PendingClearings`): its
        `submitter`, claimed `matches`, `pages` and `volume_wh`, and `verified_pages`; or None."""
        p = self.query(PALLET, "PendingClearings", [interval], block_hash=block_hash)
        if p is None:
            return None
        fields = ("matches", "pages", "volume_wh", "verified_pages")
        return {"submitter": ss58(p["submitter"])} | {f: int(p[f]) for f in fields}

    def is_cleared(self, interval: int, block_hash: str | None = None) -> bool:
        return self.query(PALLET, "Clearings", [interval], block_hash=block_hash) is not None

    def voided_at(self, interval: int, block_hash: str | None = None) -> int | None:
        """The block that finished voiding `interval` (no valid clearing by its end)."""
        v = self.query(PALLET, "Voided", [interval], block_hash=block_hash)
        return None if v is None else int(v)

    def outstanding_traders(self, interval: int, block_hash: str | None = None) -> int:
        """Traders of `interval` whose meters have not all reported: settlement waits for them
        until the interval's reading deadline."""
        return int(self.query(PALLET, "Outstanding", [interval], block_hash=block_hash) or 0)

    def settling(self, interval: int, block_hash: str | None = None) -> dict | None:
        """Where a settlement under way stands (`SettlementProgress`): participants settled so
        far and the running totals; None before it begins and once it is done."""
        v = self.query(PALLET, "SettlementProgress", [interval], block_hash=block_hash)
        if v is None:
            return None
        return {k: int(v[k]) for k in ("participants", "estimated", "shortfall_wh", "surplus_wh")}

    def settled_at(self, interval: int, block_hash: str | None = None) -> int | None:
        v = self.query(PALLET, "Settled", [interval], block_hash=block_hash)
        return None if v is None else int(v)

    def settlement_lines(self, interval: int, block_hash: str | None = None) -> dict[str, dict]:
        return {
            ss58(k): {n: int(x) for n, x in v.items()}  # `estimated` as 0 or 1
            for k, v in self.query_map(PALLET, "Settlements", [interval], block_hash=block_hash)
        }

    def metered(self, interval: int, block_hash: str | None = None) -> dict[str, dict]:
        return {
            ss58(k): {n: int(x) for n, x in v.items()}
            for k, v in self.query_map(PALLET, "Metered", [interval], block_hash=block_hash)
        }

    def meters(self, block_hash: str | None = None) -> dict[str, dict]:
        """Accredited meters by 0x public key: owner, zone, source, rated_power_w, last
        registers."""
        out = {}
        for key, v in self.query_map(PALLET, "Meters", block_hash=block_hash):
            key_hex = key if isinstance(key, str) else "0x" + bytes(key).hex()
            out[key_hex] = {
                "owner": ss58(v["owner"]),
                "zone": int(v["zone"]),
                "source": from_chain_name(v["source"]),
                "rated_power_w": int(v["rated_power_w"]),
                "last": v["last"],
            }
        return out

    def meter_epoch(self, meter: str | bytes, block_hash: str | None = None) -> int:
        """The meter's accreditation epoch (`MeterEpochs`): 0 if never accredited, 1 after its
        first accreditation, +1 at each later one; a revocation keeps it. Its readings must be
        signed under this epoch (and this chain's genesis hash)."""
        key_hex = "0x" + public_key(meter).hex()
        return int(self.query(PALLET, "MeterEpochs", [key_hex], block_hash=block_hash) or 0)

    def balance(self, account: str, block_hash: str | None = None) -> Balance:
        """The account's money, read raw (`System.Account`): one round trip. A typed read at
        the chain's head first asks the node for the head and its runtime version (four round
        trips), and the API reads a bidder's balance every second."""
        key = ACCOUNT_PREFIX + blake2_128_concat(public_key(account))
        value = self.rpc("state_getStorage", ["0x" + key.hex(), block_hash])
        if value is None:  # no such account: the storage's default
            return Balance(0, 0, 0)
        data = bytes.fromhex(value[2:])
        if len(data) != ACCOUNT_INFO_BYTES:
            raise ValueError(f"System.Account of {account} does not decode ({len(data)} bytes)")
        free, reserved, frozen = (
            int.from_bytes(data[at : at + 16], "little") for at in (16, 32, 48)
        )
        return Balance(free, reserved, frozen)

    def energy_balance(self, account: str, block_hash: str | None = None) -> int:
        return int(self.query(PALLET, "EnergyBalance", [ss58(account)], block_hash=block_hash) or 0)

    def energy_pool(self, interval: int, block_hash: str | None = None) -> dict[str, int] | None:
        """The interval's energy tokens between its readings and its settlement (`EnergyPools`):
        `held_wh` minted for its export and not handed to a buyer yet, `delivered_wh` and
        `taken_wh` measured of its trades so far. None before its first export and once it is
        settled (what no buyer took is then retired)."""
        v = self.query(PALLET, "EnergyPools", [interval], block_hash=block_hash)
        if v is None:
            return None
        return {k: int(v[k]) for k in ("held_wh", "delivered_wh", "taken_wh")}

    def energy_issuance(self, block_hash: str | None = None) -> int:
        """Energy tokens in existence, Wh: the accounts' balances plus the intervals' pools."""
        return int(self.query(PALLET, "EnergyIssuance", block_hash=block_hash) or 0)

    def account_next_nonce(self, account: str) -> int:
        """The next nonce, counting transactions already in the node's pool."""
        return int(self.rpc("system_accountNextIndex", [ss58(account)]))

    def settlement_report(self, interval: int, block_hash: str | None = None) -> dict[str, Any]:
        """The clearing house's report of one settled interval, read from chain storage."""
        clearing = self.clearing(interval, block_hash)
        trades = []
        if clearing is not None and clearing.matches:
            ids = sorted({m.bid for m in clearing.matches} | {m.offer for m in clearing.matches})
            owners = {o.order_id: o.owner for o in self.orders(ids, block_hash)}
            trades = [
                Trade(
                    interval,
                    owners[m.bid],
                    owners[m.offer],
                    m.quantity_wh,
                    m.buyer_price,
                    m.seller_price,
                )
                for m in clearing.matches
            ]
        lines = [
            SettlementLine(
                interval,
                account,
                v["contracted_wh"],
                v["metered_wh"],
                v["imbalance_wh"],
                v["amount"],
                bool(v["estimated"]),
                v["trued_up_wh"],
            )
            for account, v in self.settlement_lines(interval, block_hash).items()
        ]
        return build_report(trades, lines, self.distributor(block_hash), [interval])
