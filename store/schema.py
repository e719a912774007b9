"""The schemas of every store, in one place.

- orders.db: the write-ahead log of orders and cancels. The API appends with a synchronous
  (fsynced) commit before it answers 202; the relayer moves each entry to the chain.
- index.db:  the chain's EnergyTrading events, as the indexer saw them in finalized blocks;
  what the API serves. It can always be rebuilt from the chain.
- ops.db:    the operator's own record: clearing and settlement attempts, alerts.
- ingest.db: the meter-reading ingest's durable queue of signed readings, its anomalies and
  which meter each site has.
"""

from __future__ import annotations

# Tallies of the order log, so that the checks on each order's path are look-ups, not counts
# over the interval's or the owner's entries. Triggers keep them in the transaction of the change
# they count, whoever makes it (the API, the relayer); `connect` fills them once from the entries
# of a log older than they are (BACKFILLS).
_NOT_ON_CHAIN = 2**63 - 1  # the `block` of orders not on chain yet, or in no known block


def _block(row: str) -> str:
    """Where an order (`row`: NEW, OLD or an alias) sits in unindexed_orders: NULL when refused."""
    return (
        f"CASE WHEN {row}.status IN ('pending', 'submitted') THEN {_NOT_ON_CHAIN}"
        f" WHEN {row}.status = 'onchain' THEN coalesce({row}.block_number, {_NOT_ON_CHAIN}) END"
    )


def _cost(row: str) -> str:
    """What a bid holds once on chain, in money units (ticks per kWh x Wh = 1/1000 tick)."""
    return f"json_extract({row}.spec, '$.price_ticks') * json_extract({row}.spec, '$.quantity_wh')"


def _order_tally(row: str, sign: str) -> str:
    """Statements adding `sign` (1 or -1) times an order (NEW or OLD) to every tally."""
    cancel = (
        f"(SELECT status FROM cancels WHERE owner = {row}.owner"
        f" AND client_order_id = {row}.client_order_id)"
    )
    return f"""
    INSERT INTO interval_orders (interval, orders) SELECT {row}.interval, {sign}
        WHERE {row}.status != 'rejected'
        ON CONFLICT (interval) DO UPDATE SET orders = orders + excluded.orders;
    INSERT INTO bids_awaiting_relay (owner, cost) SELECT {row}.owner, {sign} * {_cost(row)}
        WHERE {row}.side = 'bid' AND {row}.status IN ('pending', 'submitted')
        ON CONFLICT (owner) DO UPDATE SET cost = cost + excluded.cost;
    INSERT INTO unindexed_orders (owner, interval, block, side, orders, held, counted)
        SELECT {row}.owner, {row}.interval, block, {row}.side, {sign},
            {sign} * (coalesce(cancel, 'rejected') = 'rejected'), {sign} * (cancel IS NOT 'onchain')
        FROM (SELECT {_block(row)} AS block, {cancel} AS cancel) WHERE block IS NOT NULL
        ON CONFLICT (owner, interval, block, side) DO UPDATE SET orders = orders + excluded.orders,
            held = held + excluded.held, counted = counted + excluded.counted;"""


def _cancel_tally(row: str, op: str) -> str:
    """The statement taking a cancel (NEW or OLD) into its order's tally (`op` "-") or out of
    it ("+"): a logged cancel the chain has not refused takes the order out of `held`, one on
    chain out of `counted`."""
    return f"""
    UPDATE unindexed_orders SET held = held {op} ({row}.status != 'rejected'),
        counted = counted {op} ({row}.status = 'onchain')
    WHERE (owner, interval, block, side) = (
        SELECT o.owner, o.interval, {_block("o")}, o.side FROM orders o
        WHERE o.owner = {row}.owner AND o.client_order_id = {row}.client_order_id
    );"""


ORDER_TALLIES = f"""
CREATE TABLE IF NOT EXISTS interval_orders (  -- orders logged for the interval, not refused
    interval INTEGER PRIMARY KEY, orders INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bids_awaiting_relay (  -- the owner's bids pending or submitted
    owner TEXT PRIMARY KEY,
    cost INTEGER NOT NULL                   -- what they will hold once on chain
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unindexed_orders (  -- orders the index may not show yet, not refused
    owner TEXT NOT NULL, interval INTEGER NOT NULL,
    block INTEGER NOT NULL,                 -- where they reached the chain (2^63-1: not yet)
    side TEXT NOT NULL,
    orders INTEGER NOT NULL,
    held INTEGER NOT NULL,                  -- with no cancel logged (or only a refused one)
    counted INTEGER NOT NULL,               -- with no cancel on chain
    PRIMARY KEY (owner, interval, block, side)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS orders_tally_insert AFTER INSERT ON orders BEGIN
    {_order_tally("NEW", "1")}
END;
CREATE TRIGGER IF NOT EXISTS orders_tally_update
AFTER UPDATE OF owner, client_order_id, interval, side, spec, status, block_number ON orders BEGIN
    {_order_tally("OLD", "-1")}
    {_order_tally("NEW", "1")}
END;
CREATE TRIGGER IF NOT EXISTS orders_tally_delete AFTER DELETE ON orders BEGIN
    {_order_tally("OLD", "-1")}
END;
CREATE TRIGGER IF NOT EXISTS cancels_tally_insert AFTER INSERT ON cancels BEGIN
    {_cancel_tally("NEW", "-")}
END;
CREATE TRIGGER IF NOT EXISTS cancels_tally_update
AFTER UPDATE OF owner, client_order_id, status ON cancels BEGIN
    {_cancel_tally("OLD", "+")}
    {_cancel_tally("NEW", "-")}
END;
CREATE TRIGGER IF NOT EXISTS cancels_tally_delete AFTER DELETE ON cancels BEGIN
    {_cancel_tally("OLD", "+")}
END;
"""

# The tallies of a log written before they existed, filled once by `connect` when it creates
# unindexed_orders (in the same transaction, so no change is counted twice or missed).
ORDER_TALLIES_BACKFILL = f"""
INSERT INTO interval_orders (interval, orders)
    SELECT interval, count(*) FROM orders WHERE status != 'rejected' GROUP BY interval;
INSERT INTO bids_awaiting_relay (owner, cost)
    SELECT o.owner, sum({_cost("o")}) FROM orders o
    WHERE o.side = 'bid' AND o.status IN ('pending', 'submitted') GROUP BY o.owner;
INSERT INTO unindexed_orders (owner, interval, block, side, orders, held, counted)
    SELECT owner, interval, block, side, count(*), sum(held), sum(counted) FROM (
        SELECT o.owner, o.interval, {_block("o")} AS block, o.side,
            coalesce(c.status, 'rejected') = 'rejected' AS held,
            c.status IS NOT 'onchain' AS counted
        FROM orders o LEFT JOIN cancels c
        ON c.owner = o.owner AND c.client_order_id = o.client_order_id
    ) WHERE block IS NOT NULL GROUP BY owner, interval, block, side;
"""

ORDERS_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    client_order_id TEXT NOT NULL,           -- u64 as decimal text (SQLite integers are i64)
    interval INTEGER NOT NULL,
    side TEXT NOT NULL,
    spec TEXT NOT NULL,                      -- canonical JSON of the signed OrderSpec
    signature TEXT NOT NULL,                 -- 0x hex, 64 bytes
    received_ms INTEGER NOT NULL,
    response TEXT NOT NULL,                  -- the 202 body, replayed to an identical request
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | submitted | onchain | rejected
    tx_hash TEXT, block_hash TEXT, block_number INTEGER, order_id INTEGER, error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER,
    UNIQUE (owner, client_order_id)
);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status, seq);
CREATE INDEX IF NOT EXISTS orders_interval ON orders (interval, seq);
CREATE INDEX IF NOT EXISTS orders_owner_interval ON orders (owner, interval);
CREATE TABLE IF NOT EXISTS cancels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    response TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | submitted | onchain | rejected
    tx_hash TEXT, block_hash TEXT, block_number INTEGER, error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER,
    UNIQUE (owner, client_order_id)
);
CREATE INDEX IF NOT EXISTS cancels_status ON cancels (status, seq);
"""
    + ORDER_TALLIES
)


INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY, hash TEXT NOT NULL, timestamp_ms INTEGER
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    block_number INTEGER NOT NULL, block_hash TEXT NOT NULL, extrinsic_index INTEGER,
    event_index INTEGER NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
    UNIQUE (block_number, event_index)
);
CREATE INDEX IF NOT EXISTS events_name ON events (name, seq);
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, client_order_id TEXT NOT NULL,
    interval INTEGER NOT NULL, side TEXT NOT NULL, quantity_wh INTEGER NOT NULL,
    price_ticks INTEGER NOT NULL, zone INTEGER NOT NULL, source TEXT, renewable_only INTEGER,
    status TEXT NOT NULL, filled_wh INTEGER NOT NULL DEFAULT 0,
    placed_block INTEGER NOT NULL, placed_block_hash TEXT, extrinsic_index INTEGER,
    updated_block INTEGER
);
CREATE INDEX IF NOT EXISTS orders_book ON orders (interval, zone, side, price_ticks);
CREATE INDEX IF NOT EXISTS orders_owner ON orders (owner, order_id);
-- An order's checks: whether its client order id is used, and the owner's open orders in the
-- interval by side (counted in this index alone).
CREATE INDEX IF NOT EXISTS orders_client_id ON orders (owner, client_order_id);
CREATE INDEX IF NOT EXISTS orders_owner_open ON orders (owner, interval, status, side);
DROP INDEX IF EXISTS orders_owner_interval;  -- orders_owner_open's prefix
CREATE TABLE IF NOT EXISTS trades (
    id INTEGER PRIMARY KEY AUTOINCREMENT, interval INTEGER NOT NULL, bid INTEGER NOT NULL,
    offer INTEGER NOT NULL, buyer TEXT NOT NULL, seller TEXT NOT NULL, quantity_wh INTEGER NOT NULL,
    buyer_price INTEGER NOT NULL, seller_price INTEGER NOT NULL,
    block_number INTEGER NOT NULL, block_hash TEXT NOT NULL, extrinsic_index INTEGER
);
CREATE INDEX IF NOT EXISTS trades_interval ON trades (interval, id);
CREATE INDEX IF NOT EXISTS trades_buyer ON trades (buyer, interval);
CREATE INDEX IF NOT EXISTS trades_seller ON trades (seller, interval);
CREATE TABLE IF NOT EXISTS clearings (
    interval INTEGER PRIMARY KEY, mechanism TEXT NOT NULL, volume_wh INTEGER NOT NULL,
    matches INTEGER NOT NULL, zone_prices TEXT NOT NULL, grid_fees_paid TEXT NOT NULL,
    block_number INTEGER NOT NULL, block_hash TEXT NOT NULL, extrinsic_index INTEGER,
    timestamp_ms INTEGER
);
CREATE TABLE IF NOT EXISTS clearing_progress (  -- the latest clearing registered per interval
    interval INTEGER PRIMARY KEY, submitter TEXT NOT NULL,
    state TEXT NOT NULL,             -- registered | verifying | applied | rejected
    pages INTEGER NOT NULL, verified_pages INTEGER NOT NULL, matches INTEGER NOT NULL,
    page INTEGER, error TEXT,        -- where and why it was rejected
    block_number INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS voided_intervals (  -- no valid clearing by the interval's end
    interval INTEGER PRIMARY KEY, orders INTEGER NOT NULL,
    block_number INTEGER NOT NULL, block_hash TEXT NOT NULL, timestamp_ms INTEGER
);
CREATE TABLE IF NOT EXISTS settlements (
    interval INTEGER NOT NULL, account TEXT NOT NULL, contracted_wh INTEGER NOT NULL,
    metered_wh INTEGER NOT NULL, imbalance_wh INTEGER NOT NULL, amount TEXT NOT NULL,
    block_number INTEGER NOT NULL, block_hash TEXT NOT NULL,
    estimated INTEGER NOT NULL DEFAULT 0,    -- a meter had not reported by the deadline
    trued_up_wh INTEGER NOT NULL DEFAULT 0,  -- earlier estimates and late readings taken in
    proceeds TEXT NOT NULL DEFAULT '0',      -- paid out for energy sold (net of a shortfall)
    PRIMARY KEY (interval, account)
);
CREATE TABLE IF NOT EXISTS settlement_debts (  -- payments settlement could not make
    interval INTEGER NOT NULL, debtor TEXT NOT NULL, creditor TEXT NOT NULL, amount TEXT NOT NULL,
    block_number INTEGER NOT NULL, block_hash TEXT NOT NULL,
    PRIMARY KEY (interval, debtor, creditor)
);
CREATE INDEX IF NOT EXISTS settlements_account ON settlements (account, interval);
CREATE TABLE IF NOT EXISTS intervals_settled (
    interval INTEGER PRIMARY KEY, participants INTEGER NOT NULL, shortfall_wh INTEGER NOT NULL,
    surplus_wh INTEGER NOT NULL, block_number INTEGER NOT NULL, block_hash TEXT NOT NULL,
    extrinsic_index INTEGER, distributor TEXT, estimated INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS participants (
    account TEXT PRIMARY KEY, zone INTEGER NOT NULL, block_number INTEGER
);
CREATE TABLE IF NOT EXISTS meters (
    meter TEXT PRIMARY KEY, owner TEXT NOT NULL, zone INTEGER NOT NULL, source TEXT NOT NULL,
    block_number INTEGER, revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS readings (
    meter TEXT NOT NULL, counter INTEGER NOT NULL, interval INTEGER NOT NULL, owner TEXT,
    kind TEXT NOT NULL, import_wh INTEGER NOT NULL, export_wh INTEGER NOT NULL,
    block_number INTEGER NOT NULL, block_hash TEXT NOT NULL,
    PRIMARY KEY (meter, counter)
);
CREATE TABLE IF NOT EXISTS energy_moves (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, source TEXT, target TEXT NOT NULL,
    amount_wh INTEGER NOT NULL, block_number INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS roles (
    role TEXT PRIMARY KEY, account TEXT NOT NULL, block_number INTEGER
);
"""

OPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS clearing_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    interval INTEGER NOT NULL,
    state TEXT NOT NULL,   -- signed | submitted | committed | rejected | dropped | voiding | voided
    mechanism TEXT, orders INTEGER, volume_wh INTEGER, price INTEGER, matches INTEGER,
    clearing TEXT,                  -- the matcher's result, canonical JSON
    read_at TEXT,                   -- block hash the book was read at
    tx_hash TEXT, tx_data TEXT, nonce INTEGER,
    best_at_submit INTEGER, mortal_until INTEGER,   -- where to look for the tx after a restart
    block_hash TEXT, block_number INTEGER, extrinsic_index INTEGER, error TEXT,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    commit_latency_ms INTEGER,      -- from gate closure to finality of the clearing
    pages INTEGER                   -- a clearing sent in pages: how many (clearing_txs)
);
CREATE INDEX IF NOT EXISTS clearing_attempts_interval ON clearing_attempts (interval, id);
CREATE TABLE IF NOT EXISTS clearing_txs (  -- a paged clearing's extrinsics, logged when signed
    attempt_id INTEGER NOT NULL, seq INTEGER NOT NULL,  -- 0: the registration, 1 + i: page i
    call TEXT NOT NULL, tx_hash TEXT NOT NULL, tx_data TEXT NOT NULL, nonce INTEGER NOT NULL,
    best_at_submit INTEGER NOT NULL, mortal_until INTEGER NOT NULL,
    PRIMARY KEY (attempt_id, seq)
);
CREATE TABLE IF NOT EXISTS settle_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, interval INTEGER NOT NULL, state TEXT NOT NULL,
    tx_hash TEXT, block_hash TEXT, block_number INTEGER, error TEXT, missing_meters TEXT,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS settle_attempts_interval ON settle_attempts (interval, id);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, source TEXT NOT NULL,
    interval INTEGER, name TEXT NOT NULL, detail TEXT NOT NULL,
    acked_ms INTEGER, acked_by TEXT          -- seen by the operator (account), and when
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS used_challenges (  -- api/auth.py: a login's challenge works once
    challenge TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (     -- device configuration (store/devices.py)
    name TEXT PRIMARY KEY, model TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
    unit_id INTEGER NOT NULL,
    meter TEXT NOT NULL,                 -- 0x public key of the site's meter key (never the key)
    rated_power_w INTEGER NOT NULL DEFAULT 0,             -- 0: not known
    poll_period_s INTEGER NOT NULL DEFAULT 10,
    curtail_limit_w INTEGER,             -- NULL: no curtailment configured
    revert_timer_s INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,  -- +1 per accepted change, which ingest then applies
    updated_ms INTEGER NOT NULL, updated_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS device_changes (  -- one row per field an accepted change touched
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, at_ms INTEGER NOT NULL,
    "by" TEXT NOT NULL,                  -- the session's account, or 'sites file'
    field TEXT NOT NULL, old TEXT, new TEXT  -- JSON values, old NULL when seeded
);
CREATE INDEX IF NOT EXISTS device_changes_name ON device_changes (name, id);
CREATE TABLE IF NOT EXISTS device_status (   -- what the ingest last saw of each device
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL DEFAULT 'unknown',   -- connected | stale | unknown
    last_ok_ms INTEGER, last_error TEXT,
    import_wh INTEGER, export_wh INTEGER, power_w INTEGER,  -- of the last good read
    checked_ms INTEGER,                  -- the last read, good or bad
    applied_version INTEGER, applied_ms INTEGER
);
"""

INGEST_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    meter TEXT NOT NULL, counter INTEGER NOT NULL, interval INTEGER NOT NULL,
    import_wh INTEGER NOT NULL, export_wh INTEGER NOT NULL, signature TEXT NOT NULL,
    site TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', error TEXT, block INTEGER,
    queued_ms INTEGER NOT NULL,
    genesis_hash TEXT, epoch INTEGER,        -- what the signature binds (NULL: a v1 reading)
    PRIMARY KEY (meter, counter)
);
CREATE TABLE IF NOT EXISTS anomalies (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT, meter TEXT, interval INTEGER,
    kind TEXT NOT NULL, detail TEXT, at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sites (name TEXT PRIMARY KEY, meter TEXT NOT NULL);
"""

# Columns added to a table after its first release: `connect` adds those an older file lacks
# (CREATE TABLE IF NOT EXISTS leaves an existing table as it is).
ADDED_COLUMNS: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    INDEX_SCHEMA: {
        "settlements": (
            ("estimated", "INTEGER NOT NULL DEFAULT 0"),
            ("trued_up_wh", "INTEGER NOT NULL DEFAULT 0"),
            ("proceeds", "TEXT NOT NULL DEFAULT '0'"),
        ),
        "intervals_settled": (
            ("estimated", "INTEGER NOT NULL DEFAULT 0"),
            # Energy tokens of the interval no buyer took, retired at its settlement.
            ("retired_wh", "INTEGER NOT NULL DEFAULT 0"),
        ),
        # Tokens move through their interval's pool: minted for an exporter into it, delivered
        # from it to a buyer.
        "energy_moves": (("interval", "INTEGER"),),
    },
    OPS_SCHEMA: {
        "alerts": (("acked_ms", "INTEGER"), ("acked_by", "TEXT")),
        "clearing_attempts": (("pages", "INTEGER"),),
    },
    # Readings bound to a chain and an accreditation epoch.
    INGEST_SCHEMA: {"readings": (("genesis_hash", "TEXT"), ("epoch", "INTEGER"))},
}

# Tables filled from the data already there when `connect` creates them (in its transaction):
# {schema: (table, statements)}.
BACKFILLS: dict[str, tuple[str, str]] = {
    ORDERS_SCHEMA: ("unindexed_orders", ORDER_TALLIES_BACKFILL),
}
