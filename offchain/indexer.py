"""The indexer: follows finalized blocks and writes the EnergyTrading events into index.db,
which the API reads. Finalized only, so nothing it writes is ever retracted; each block is one
SQLite transaction together with the cursor, so a crash re-indexes at most that block.
A node that comes back with a different genesis (a new dev chain) resets the index.
"""

from __future__ import annotations

import json
import logging

from chain import PALLET, Block, Chain, ChainError
from market import from_chain_name, ss58
from store import DataDir, transaction

log = logging.getLogger(__name__)

STREAMED = (
    "ClearingAccepted",
    "IntervalSettled",
    "ParticipantSettled",
    "SettlementDebt",
    "OrderPlaced",
    "OrderCancelled",
    "ReadingAccepted",
)
_TABLES = (
    "blocks",
    "events",
    "orders",
    "trades",
    "clearings",
    "clearing_progress",
    "voided_intervals",
    "settlements",
    "settlement_debts",
    "intervals_settled",
    "participants",
    "meters",
    "readings",
    "energy_moves",
    "roles",
    "meta",
)


def _json_default(value):
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)


def _hex(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return "0x" + bytes(value).hex()
    return str(value)


class Indexer:
    name = "indexer"

    def __init__(self, data: DataDir, chain: Chain, *, max_blocks_per_step: int = 50):
        self.data = data
        self.chain = chain
        self.db = data.index()
        self.max_blocks = max_blocks_per_step
        self._checked_genesis = False

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def last_block(self) -> int:
        value = self.meta("last_block")
        return -1 if value is None else int(value)

    def _check_genesis(self) -> None:
        genesis = self.chain.genesis_hash_hex
        known = self.meta("genesis")
        if known is not None and known != genesis:
            log.warning(
                "the node runs a new chain (genesis %s, index had %s): resetting the index",
                genesis,
                known,
            )
            with transaction(self.db) as c:
                for table in _TABLES:
                    c.execute(f"DELETE FROM {table}")
        with transaction(self.db) as c:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('genesis', ?)", (genesis,))
            # Roles set at genesis emit no event.
            for role, account in (
                ("distributor", self.chain.distributor()),
                ("operator", self.chain.market_operator()),
            ):
                if account is not None:
                    c.execute(
                        "INSERT OR IGNORE INTO roles (role, account, block_number)"
                        " VALUES (?, ?, 0)",
                        (role, account),
                    )
            if known is None or known != genesis:
                for account, zone in self.chain.participants().items():
                    c.execute(
                        "INSERT OR IGNORE INTO participants (account, zone, block_number)"
                        " VALUES (?, ?, 0)",
                        (account, zone),
                    )
        self._checked_genesis = True

    def step(self) -> int:
        """Index the finalized blocks not yet indexed (a bounded number); returns how many."""
        if not self._checked_genesis:
            self._check_genesis()
        finalized = self.chain.finalized_number()
        start = self.last_block() + 1
        stop = min(finalized, start + self.max_blocks - 1)
        for number in range(start, stop + 1):
            self.index_block(self.chain.block(number))
        return max(0, stop - start + 1)

    def index_block(self, block: Block) -> None:
        ours = [e for e in block.events if e.pallet == PALLET]
        with transaction(self.db) as c:
            c.execute(
                "INSERT OR REPLACE INTO blocks (number, hash, timestamp_ms) VALUES (?, ?, ?)",
                (block.number, block.hash, block.timestamp_ms),
            )
            for e in ours:
                c.execute(
                    "INSERT OR IGNORE INTO events"
                    " (block_number, block_hash, extrinsic_index, event_index, name, data)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        block.number,
                        block.hash,
                        e.extrinsic_index,
                        e.index,
                        e.name,
                        json.dumps(e.attributes, default=_json_default, sort_keys=True),
                    ),
                )
                handler = getattr(self, f"_on_{e.name}", None)
                if handler is not None:
                    handler(c, block, e)
            c.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_block', ?)",
                (str(block.number),),
            )

    # -- one handler per event ---------------------------------------------------------------
    def _on_MarketOperatorSet(self, c, block, e):
        c.execute(
            "INSERT OR REPLACE INTO roles (role, account, block_number) VALUES ('operator', ?, ?)",
            (ss58(e.attributes["who"]), block.number),
        )

    def _on_DistributorSet(self, c, block, e):
        c.execute(
            "INSERT OR REPLACE INTO roles (role, account, block_number)"
            " VALUES ('distributor', ?, ?)",
            (ss58(e.attributes["who"]), block.number),
        )

    def _on_ParticipantRegistered(self, c, block, e):
        c.execute(
            "INSERT OR REPLACE INTO participants (account, zone, block_number) VALUES (?, ?, ?)",
            (ss58(e.attributes["who"]), int(e.attributes["zone"]), block.number),
        )

    def _on_MeterAccredited(self, c, block, e):
        a = e.attributes
        c.execute(
            "INSERT OR REPLACE INTO meters (meter, owner, zone, source, block_number, revoked)"
            " VALUES (?, ?, ?, ?, ?, 0)",
            (
                _hex(a["meter"]),
                ss58(a["owner"]),
                int(a["zone"]),
                from_chain_name(a["source"]),
                block.number,
            ),
        )

    def _on_MeterRevoked(self, c, block, e):
        c.execute("UPDATE meters SET revoked = 1 WHERE meter = ?", (_hex(e.attributes["meter"]),))

    def _on_OrderPlaced(self, c, block, e):
        a = e.attributes
        order_id = int(a["order_id"])
        c.execute(
            "INSERT OR REPLACE INTO orders (order_id, owner, client_order_id, interval, side,"
            " quantity_wh, price_ticks, zone, source, renewable_only, status, filled_wh,"
            " placed_block, placed_block_hash, extrinsic_index, updated_block)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', 0, ?, ?, ?, ?)",
            (
                order_id,
                ss58(a["owner"]),
                str(a["client_order_id"]),
                int(a["interval"]),
                from_chain_name(a["side"]),
                int(a["quantity_wh"]),
                int(a["price_ticks"]),
                int(a["zone"]),
                from_chain_name(a["source"]),
                int(bool(a["renewable_only"])),
                block.number,
                block.hash,
                e.extrinsic_index,
                block.number,
            ),
        )

    def _on_OrderCancelled(self, c, block, e):
        c.execute(
            "UPDATE orders SET status = 'cancelled', updated_block = ? WHERE order_id = ?",
            (block.number, int(e.attributes["order_id"])),
        )

    def _on_ClearingAccepted(self, c, block, e):
        a = e.attributes
        interval = int(a["interval"])
        prices = [
            {"zone": int(p["zone"]), "price": int(p["price"])} for p in (a.get("zone_prices") or [])
        ]
        c.execute(
            "INSERT OR REPLACE INTO clearings (interval, mechanism, volume_wh, matches,"
            " zone_prices, grid_fees_paid, block_number, block_hash, extrinsic_index, timestamp_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                interval,
                from_chain_name(a["mechanism"]),
                int(a["volume_wh"]),
                int(a["matches"]),
                json.dumps(prices),
                str(a["grid_fees_paid"]),
                block.number,
                block.hash,
                e.extrinsic_index,
                block.timestamp_ms,
            ),
        )
        self._index_trades(
            c, block, e.extrinsic_index, interval, int(a["pages"]), int(a["matches"])
        )
        c.execute(
            "UPDATE orders SET status = 'cleared', updated_block = ?"
            " WHERE interval = ? AND status = 'open'",
            (block.number, interval),
        )
        c.execute(
            "UPDATE clearing_progress SET state = 'applied', block_number = ? WHERE interval = ?",
            (block.number, interval),
        )

    def _index_trades(self, c, block, extrinsic_index, interval, pages, matches) -> None:
        """The trades of a clearing just accepted: its matches, kept by the chain in its pages
        (no event per trade: a city's clearing has 100,000), with each order's owner from the
        index and fills added up per order. Read at the accepting block; a node that no longer
        holds that block's state (the indexer far behind a pruning node) still has the pages at
        its head until the interval is pruned, and one that has neither fails loudly, never
        indexing a clearing without its trades."""
        try:
            trades = self.chain.clearing_matches(interval, pages, block.hash)
        except ChainError:  # that block's state is discarded
            trades = []
        if len(trades) != matches:
            trades = self.chain.clearing_matches(interval, pages, self.chain.finalized_hash())
        if len(trades) != matches:
            raise RuntimeError(
                f"the node no longer holds the {matches} matches of interval {interval}'s"
                f" clearing (block {block.number}); index from an archive node"
                " (--state-pruning archive)"
            )
        owners = dict(
            c.execute("SELECT order_id, owner FROM orders WHERE interval = ?", (interval,))
        )
        filled: dict[int, int] = {}
        rows = []
        for t in trades:
            filled[t.bid] = filled.get(t.bid, 0) + t.quantity_wh
            filled[t.offer] = filled.get(t.offer, 0) + t.quantity_wh
            rows.append(
                (
                    interval,
                    t.bid,
                    t.offer,
                    owners[t.bid],
                    owners[t.offer],
                    t.quantity_wh,
                    t.buyer_price,
                    t.seller_price,
                    block.number,
                    block.hash,
                    extrinsic_index,
                )
            )
        c.executemany(
            "INSERT INTO trades (interval, bid, offer, buyer, seller, quantity_wh, buyer_price,"
            " seller_price, block_number, block_hash, extrinsic_index)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        c.executemany(
            "UPDATE orders SET filled_wh = filled_wh + ?, updated_block = ? WHERE order_id = ?",
            [(wh, block.number, order) for order, wh in filled.items()],
        )

    # A clearing's progress: registered, its pages verified one by one, then applied or
    # rejected (with the page and the check).
    def _on_ClearingRegistered(self, c, block, e):
        a = e.attributes
        c.execute(
            "INSERT OR REPLACE INTO clearing_progress (interval, submitter, state, pages,"
            " verified_pages, matches, block_number) VALUES (?, ?, 'registered', ?, 0, ?, ?)",
            (
                int(a["interval"]),
                ss58(a["submitter"]),
                int(a["pages"]),
                int(a["matches"]),
                block.number,
            ),
        )

    def _on_ClearingPageVerified(self, c, block, e):
        c.execute(
            "UPDATE clearing_progress SET state = 'verifying', verified_pages = ?,"
            " block_number = ? WHERE interval = ?",
            (int(e.attributes["page"]) + 1, block.number, int(e.attributes["interval"])),
        )

    def _on_ClearingRejected(self, c, block, e):
        a = e.attributes
        error = self.chain.error_of(a["error"]).name
        c.execute(
            "UPDATE clearing_progress SET state = 'rejected', page = ?, error = ?,"
            " block_number = ? WHERE interval = ? AND submitter = ?",
            (int(a["page"]), error, block.number, int(a["interval"]), ss58(a["submitter"])),
        )

    def _on_IntervalVoided(self, c, block, e):
        interval = int(e.attributes["interval"])
        c.execute(
            "INSERT OR REPLACE INTO voided_intervals (interval, orders, block_number, block_hash,"
            " timestamp_ms) VALUES (?, ?, ?, ?, ?)",
            (interval, int(e.attributes["orders"]), block.number, block.hash, block.timestamp_ms),
        )
        c.execute(
            "UPDATE orders SET status = 'voided', updated_block = ?"
            " WHERE interval = ? AND status = 'open'",
            (block.number, interval),
        )

    def _on_MeterBaselineSet(self, c, block, e):
        a = e.attributes
        c.execute(
            "INSERT OR REPLACE INTO readings (meter, counter, interval, owner, kind, import_wh,"
            " export_wh, block_number, block_hash)"
            " VALUES (?, ?, ?, (SELECT owner FROM meters WHERE meter = ?), 'baseline',"
            " ?, ?, ?, ?)",
            (
                _hex(a["meter"]),
                int(a["counter"]),
                int(a["interval"]),
                _hex(a["meter"]),
                int(a["import_wh"]),
                int(a["export_wh"]),
                block.number,
                block.hash,
            ),
        )

    def _on_ReadingAccepted(self, c, block, e):
        a = e.attributes
        c.execute(
            "INSERT OR REPLACE INTO readings (meter, counter, interval, owner, kind, import_wh,"
            " export_wh, block_number, block_hash) VALUES (?, ?, ?, ?, 'reading', ?, ?, ?, ?)",
            (
                _hex(a["meter"]),
                int(a["counter"]),
                int(a["interval"]),
                ss58(a["owner"]),
                int(a["import_wh"]),
                int(a["export_wh"]),
                block.number,
                block.hash,
            ),
        )

    def _on_EnergyMinted(self, c, block, e):
        # Minted for `who`'s export into the interval's pool, not to `who`'s balance.
        a = e.attributes
        c.execute(
            "INSERT INTO energy_moves (kind, source, target, amount_wh, block_number, interval)"
            " VALUES ('mint', NULL, ?, ?, ?, ?)",
            (ss58(a["who"]), int(a["amount_wh"]), block.number, int(a["interval"])),
        )

    def _on_EnergyDelivered(self, c, block, e):
        a = e.attributes
        c.execute(
            "INSERT INTO energy_moves (kind, source, target, amount_wh, block_number, interval)"
            " VALUES ('deliver', NULL, ?, ?, ?, ?)",
            (ss58(a["who"]), int(a["amount_wh"]), block.number, int(a["interval"])),
        )

    def _on_EnergyRetired(self, c, block, e):
        # Emitted right after its IntervalSettled, whose row it completes.
        a = e.attributes
        c.execute(
            "UPDATE intervals_settled SET retired_wh = ? WHERE interval = ?",
            (int(a["amount_wh"]), int(a["interval"])),
        )

    def _on_EnergyTransferred(self, c, block, e):
        a = e.attributes
        c.execute(
            "INSERT INTO energy_moves (kind, source, target, amount_wh, block_number)"
            " VALUES ('transfer', ?, ?, ?, ?)",
            (ss58(a["from"]), ss58(a["to"]), int(a["amount_wh"]), block.number),
        )

    def _on_ParticipantSettled(self, c, block, e):
        a = e.attributes
        line = a["line"]
        c.execute(
            "INSERT OR REPLACE INTO settlements (interval, account, contracted_wh, metered_wh,"
            " imbalance_wh, amount, block_number, block_hash, estimated, trued_up_wh, proceeds)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                int(a["interval"]),
                ss58(a["who"]),
                int(line["contracted_wh"]),
                int(line["metered_wh"]),
                int(line["imbalance_wh"]),
                str(int(line["amount"])),
                block.number,
                block.hash,
                int(bool(line["estimated"])),
                int(line["trued_up_wh"]),
                str(int(line["proceeds"])),
            ),
        )

    def _on_SettlementDebt(self, c, block, e):
        a = e.attributes
        c.execute(
            "INSERT OR REPLACE INTO settlement_debts (interval, debtor, creditor, amount,"
            " block_number, block_hash) VALUES (?, ?, ?, ?, ?, ?)",
            (
                int(a["interval"]),
                ss58(a["debtor"]),
                ss58(a["creditor"]),
                str(int(a["amount"])),
                block.number,
                block.hash,
            ),
        )

    def _on_IntervalSettled(self, c, block, e):
        a = e.attributes
        row = c.execute("SELECT account FROM roles WHERE role = 'distributor'").fetchone()
        c.execute(
            "INSERT OR REPLACE INTO intervals_settled (interval, participants, shortfall_wh,"
            " surplus_wh, block_number, block_hash, extrinsic_index, distributor, estimated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                int(a["interval"]),
                int(a["participants"]),
                int(a["shortfall_wh"]),
                int(a["surplus_wh"]),
                block.number,
                block.hash,
                e.extrinsic_index,
                row["account"] if row else None,
                int(a["estimated"]),
            ),
        )


__all__ = ["Indexer", "STREAMED"]
