"""SQLite connections (WAL mode), transactions, and the data folder's layout. The schemas are in
store/schema.py."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from market import now_ms

from .schema import ADDED_COLUMNS, INDEX_SCHEMA, OPS_SCHEMA, ORDERS_SCHEMA


def connect(
    path: str | os.PathLike, schema: str, *, synchronous: str = "FULL", readonly: bool = False
) -> sqlite3.Connection:
    """A connection in WAL mode. synchronous=FULL makes every commit durable (fsync of the WAL)
    before it returns: what the order log needs before the API answers 202."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if not readonly:
        with transaction(conn):
            for statement in _statements(schema):
                conn.execute(statement)
            for table, columns in ADDED_COLUMNS.get(schema, {}).items():
                have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for column, kind in columns:
                    if column not in have:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    return conn


def _statements(schema: str) -> list[str]:
    return [s.strip() for s in schema.split(";") if s.strip()]


class transaction:
    """`with transaction(conn):` BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error).
    `commit_seconds`, if given, is called with how long the COMMIT took (the fsync, at
    synchronous=FULL)."""

    def __init__(
        self, conn: sqlite3.Connection, *, commit_seconds: Callable[[float], None] | None = None
    ):
        self.conn = conn
        self.commit_seconds = commit_seconds

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            start = time.perf_counter()
            self.conn.execute("COMMIT")
            if self.commit_seconds is not None:
                self.commit_seconds(time.perf_counter() - start)
        else:
            self.conn.execute("ROLLBACK")


class ThreadConnection:
    """Stands for "this thread's connection" to one store: every call goes to the connection of
    the thread making it. (FastAPI may resolve a dependency on one thread and run the endpoint
    on another; an SQLite connection must not serve two threads at once.)"""

    def __init__(self, get):
        self._get = get

    def execute(self, *args, **kwargs):
        return self._get().execute(*args, **kwargs)

    def executemany(self, *args, **kwargs):
        return self._get().executemany(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._get(), name)


class DataDir:
    """The data folder's layout; each process opens its own connections (thread-local)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()

    @property
    def orders_path(self) -> Path:
        return self.root / "orders.db"

    @property
    def index_path(self) -> Path:
        return self.root / "index.db"

    @property
    def ops_path(self) -> Path:
        return self.root / "ops.db"

    @property
    def ingest_path(self) -> Path:
        """The meter-reading ingest's queue (store/readings.py opens it)."""
        return self.root / "ingest.db"

    def _conn(self, name: str, path: Path, schema: str, synchronous: str) -> sqlite3.Connection:
        conn = getattr(self._local, name, None)
        if conn is None:
            conn = connect(path, schema, synchronous=synchronous)
            setattr(self._local, name, conn)
        return conn

    def orders(self) -> sqlite3.Connection:
        return self._conn("orders", self.orders_path, ORDERS_SCHEMA, "FULL")

    def index(self) -> sqlite3.Connection:
        # Rebuildable from the chain, so a lost tail after power loss costs nothing.
        return self._conn("index", self.index_path, INDEX_SCHEMA, "NORMAL")

    def ops(self) -> sqlite3.Connection:
        return self._conn("ops", self.ops_path, OPS_SCHEMA, "FULL")

    def close(self) -> None:
        for name in ("orders", "index", "ops"):
            conn = getattr(self._local, name, None)
            if conn is not None:
                conn.close()
                setattr(self._local, name, None)


def alert(
    conn: sqlite3.Connection, source: str, name: str, detail: str, interval: int | None = None
) -> None:
    """Record an alert for the operator (the API lists them; logs carry them at ERROR)."""
    conn.execute(
        "INSERT INTO alerts (at_ms, source, interval, name, detail) VALUES (?, ?, ?, ?, ?)",
        (now_ms(), source, interval, name, detail),
    )
