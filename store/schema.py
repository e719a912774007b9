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

ORDERS_SCHEMA = """
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
CREATE INDEX IF NOT EXISTS orders_owner_interval ON orders (owner, interval);
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
    commit_latency_ms INTEGER       -- from gate closure to finality of the clearing
);
CREATE INDEX IF NOT EXISTS clearing_attempts_interval ON clearing_attempts (interval, id);
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
    OPS_SCHEMA: {"alerts": (("acked_ms", "INTEGER"), ("acked_by", "TEXT"))},
    # Readings bound to a chain and an accreditation epoch.
    INGEST_SCHEMA: {"readings": (("genesis_hash", "TEXT"), ("epoch", "INTEGER"))},
}
