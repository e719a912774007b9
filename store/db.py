"""SQLite connections (WAL mode), transactions, and the data folder's layout. The schemas are in
store/schema.py."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from market import now_ms

from .schema import ADDED_COLUMNS, BACKFILLS, INDEX_SCHEMA, OPS_SCHEMA, ORDERS_SCHEMA

T = TypeVar("T")


class Connection(sqlite3.Connection):
    """An SQLite connection with its handle on its database's writers' lock (`<db>-writers`).

    A write transaction (`transaction`, `GroupCommit`) takes that file lock before SQLite's
    write lock. A writer waiting on SQLite's lock polls it, sleeping longer each time up to
    100 ms, so under steady appends from the API's processes the relayer waited out 80 % of
    its time there at 1,000 orders/s. Waiting on the file lock, the kernel wakes the next
    writer as soon as the lock is free. One thing to avoid: a thread that writes through a
    second connection to a database inside a transaction of its first would wait for good,
    where SQLite gave up after its busy timeout."""

    writers: Any = None  # the lock file, opened at the first write transaction

    def lock_writers(self) -> bool:
        """Waits for the writers' lock; False for a database in memory (no other process)."""
        if self.writers is None:
            path = self.execute("PRAGMA database_list").fetchone()[2]
            if not path:
                return False
            self.writers = open(f"{path}-writers", "ab")  # held while connected
        fcntl.flock(self.writers, fcntl.LOCK_EX)
        return True

    def unlock_writers(self) -> None:
        fcntl.flock(self.writers, fcntl.LOCK_UN)

    def close(self) -> None:
        super().close()
        if self.writers is not None:
            self.writers.close()


def connect(
    path: str | os.PathLike,
    schema: str,
    *,
    synchronous: str = "FULL",
    readonly: bool = False,
    autocheckpoint: bool = True,
) -> Connection:
    """A connection in WAL mode. synchronous=FULL makes every commit durable (fsync of the WAL)
    before it returns: what the order log needs before the API answers 202. Without
    `autocheckpoint` its commits never copy the log into the database: a `Checkpoints` thread
    does."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path),
        timeout=30.0,
        isolation_level=None,
        check_same_thread=False,
        factory=Connection,
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    if not readonly:
        with transaction(conn):
            backfill = BACKFILLS.get(schema)
            fill = backfill is not None and not _has_table(conn, backfill[0])
            for statement in _statements(schema):
                conn.execute(statement)
            for table, columns in ADDED_COLUMNS.get(schema, {}).items():
                have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for column, kind in columns:
                    if column not in have:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            if fill:
                for statement in _statements(backfill[1]):
                    conn.execute(statement)
    return conn


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row.fetchone() is not None


def _statements(script: str) -> list[str]:
    """The statements of a script, a trigger's body (its own `;`s) kept in its statement."""
    statements, part = [], ""
    for piece in script.split(";"):
        part += piece + ";"
        if sqlite3.complete_statement(part):
            statements.append(part.strip())
            part = ""
    return [s for s in statements if s != ";"]


@contextmanager
def writing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """The database's writers' lock held around a write transaction (see `Connection`)."""
    lock = getattr(conn, "lock_writers", None)  # a plain sqlite3 connection has none
    locks = lock is not None and lock()
    try:
        yield conn
    finally:
        if locks:
            conn.unlock_writers()


@contextmanager
def transaction(
    conn: sqlite3.Connection, *, commit_seconds: Callable[[float], None] | None = None
) -> Iterator[sqlite3.Connection]:
    """`with transaction(conn):` BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), the writers'
    lock held throughout. `commit_seconds`, if given, is called with how long the COMMIT took
    (the fsync, at synchronous=FULL)."""
    with writing(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        start = time.perf_counter()
        conn.execute("COMMIT")
        if commit_seconds is not None:
            commit_seconds(time.perf_counter() - start)


class CommitFailed(sqlite3.OperationalError):
    """The commit of a group failed: none of its writes is durable."""


class _Write:
    __slots__ = ("write", "done", "result", "error", "group_error")

    def __init__(self, write: Callable[[sqlite3.Connection], Any]):
        self.write = write
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None  # the write's own
        self.group_error: BaseException | None = None  # its group's (BEGIN or COMMIT)

    def outcome(self) -> Any:
        if self.group_error is not None:
            raise CommitFailed(f"the group commit failed: {self.group_error}") from self.group_error
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommit:
    """Writes from many threads of a process, committed together. `run(conn, write)` queues the
    write; a thread finding no group committing leads: it runs every write queued so far in one
    BEGIN IMMEDIATE ... COMMIT on its own `conn`, then wakes each writer with its own result.
    One commit (one fsync, at synchronous=FULL) makes the whole group durable, and the threads
    never contend for SQLite's write lock (whose busy handler sleeps). Alone, a write commits at
    once; while a group commits, the next one gathers.

    Each write runs in a savepoint: one that raises undoes only its own changes, and only its
    writer gets the exception. When the commit fails, every writer of the group gets
    CommitFailed: run() returns only once its write is durable."""

    def __init__(self, *, commit_seconds: Callable[[float], None] | None = None):
        self.commit_seconds = commit_seconds
        self._cond = threading.Condition()
        self._queue: list[_Write] = []
        self._leading = False  # a group is being committed
        self._leader: int | None = None  # the thread committing it

    def run(self, conn: sqlite3.Connection, write: Callable[[sqlite3.Connection], T]) -> T:
        """`write(c)` in a transaction on some thread's connection `c`, committed (with others)
        before this returns its result."""
        job = _Write(write)
        with self._cond:
            if self._leading and self._leader == threading.get_ident():
                raise RuntimeError("run() inside a write of the group would wait for itself")
            self._queue.append(job)
            while self._leading and not job.done:
                self._cond.wait()
            lead = not job.done
            if lead:
                self._leading, self._leader = True, threading.get_ident()
                group, self._queue = self._queue, []
        if lead:
            try:
                self._commit(conn, group)
            finally:
                with self._cond:
                    self._leading, self._leader = False, None
                    self._cond.notify_all()
        return job.outcome()

    def _commit(self, conn: sqlite3.Connection, group: list[_Write]) -> None:
        with writing(conn):
            self._commit_locked(conn, group)

    def _commit_locked(self, conn: sqlite3.Connection, group: list[_Write]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            changes = conn.total_changes
            for job in group:
                conn.execute("SAVEPOINT write")
                try:
                    job.result = job.write(conn)
                except Exception as exc:
                    job.error = exc
                    if not conn.in_transaction:  # SQLite rolled it all back (a full disk, ...)
                        raise
                    conn.execute("ROLLBACK TO write")
                conn.execute("RELEASE write")
            start = time.perf_counter()
            conn.execute("COMMIT")
            # A group that wrote nothing (replays, refusals) commits no page: no fsync to time.
            if self.commit_seconds is not None and conn.total_changes != changes:
                self.commit_seconds(time.perf_counter() - start)
        except BaseException as exc:
            for job in group:
                job.group_error = exc
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if not isinstance(exc, Exception):
                raise
        finally:
            for job in group:
                job.done = True


class Checkpoints:
    """Copies a database's write-ahead log into the database every `every_s` seconds, on a
    thread of its own, for connections opened without `autocheckpoint`.

    SQLite otherwise checkpoints inside the COMMIT that takes the log past 1,000 pages, while
    that writer holds the writers' lock: under `make loadtest` one commit of the API in a few
    thousand took 160-210 ms, every 10-20 s, and every order arriving meanwhile waited for it
    (a p99 of 270 ms). A PASSIVE checkpoint waits for no reader or writer, and takes no write
    lock: the appends go on while it copies. Several processes may each run one: SQLite lets
    one checkpoint at a time, and the others skip their turn."""

    def __init__(self, path: str | os.PathLike, *, every_s: float = 1.0):
        self.path, self.every_s = str(path), every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)

    def start(self) -> Checkpoints:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self.every_s):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()


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

    def _conn(
        self, name: str, schema: str, synchronous: str, *, autocheckpoint: bool = True
    ) -> sqlite3.Connection:
        # Called for every statement of a request (ThreadConnection): the path (its property,
        # `orders_path`, ...) is built only when this thread opens its connection.
        conn = getattr(self._local, name, None)
        if conn is None:
            conn = connect(
                getattr(self, f"{name}_path"),
                schema,
                synchronous=synchronous,
                autocheckpoint=autocheckpoint,
            )
            setattr(self._local, name, conn)
        return conn

    def orders(self) -> sqlite3.Connection:
        # Checkpointed apart (`orders_checkpoints`): not inside an order's commit.
        return self._conn("orders", ORDERS_SCHEMA, "FULL", autocheckpoint=False)

    def orders_checkpoints(self) -> Checkpoints:
        """The order log's checkpoints, started: each process that writes the log runs them
        (the API's, the relayer's), and stops them when it stops."""
        return Checkpoints(self.orders_path).start()

    def index(self) -> sqlite3.Connection:
        # Rebuildable from the chain, so a lost tail after power loss costs nothing.
        return self._conn("index", INDEX_SCHEMA, "NORMAL")

    def ops(self) -> sqlite3.Connection:
        return self._conn("ops", OPS_SCHEMA, "FULL")

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
