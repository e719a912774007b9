"""The write-ahead log of orders and cancels (orders.db): the API appends, the relayer drains.

An entry is durable (a synchronous SQLite commit in WAL mode, i.e. fsynced) before the API
answers 202, and it leaves the log only by reaching the chain (`onchain`) or by the chain's
verdict (`rejected`, with the pallet's error). `(owner, client_order_id)` is unique, which makes
a resubmission idempotent: the same order gets the first answer again, a different one a 409.

Appends commit in groups: the appends that the threads of a process (the API's requests) make
at the same time share one transaction and one commit, one fsync for them all (a GroupCommit,
shared by the process's OrderLogs: `log_commits()`). `together(work)` makes a whole piece of
work one write of such a group: its appends, and its reads of the log between them, which see
the entries appended before them. A batch of orders (POST /orders/batch) is one.

The checks on an order's path read tallies that triggers keep with the entries (store/schema.py,
ORDER_TALLIES): one look-up each, however many entries the interval or the owner has.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from itertools import islice
from typing import NamedTuple, TypeVar

from prometheus_client import Histogram

from market import OrderSpec, now_ms

from .db import GroupCommit, transaction

# Where a 202 waits: the commit (fsync) that makes logged entries durable, one per commit (a
# group commit counts once). Served at the API's /metrics.
LOG_COMMIT_SECONDS = Histogram(
    "wattchain_order_log_commit_seconds",
    "Time of the order log's commit (its fsync) that makes orders and cancels durable",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

T = TypeVar("T")

# Entry states.
PENDING, SUBMITTED, ONCHAIN, REJECTED = "pending", "submitted", "onchain", "rejected"


def log_commits() -> GroupCommit:
    """Where a process's appends to the order log commit: one per process (the API keeps it in
    app.state), shared by the OrderLogs of its threads so that their appends commit together."""
    return GroupCommit(commit_seconds=LOG_COMMIT_SECONDS.observe)


def spec_json(spec: OrderSpec) -> str:
    return json.dumps(spec.as_dict(), sort_keys=True, separators=(",", ":"))


@dataclass
class Appended:
    outcome: str  # "new" | "same" | "conflict" | "late"
    response: dict
    seq: int


class Unrelayed(NamedTuple):
    waiting: int  # orders and cancels pending or in flight
    order_from: int  # the lowest order seq that may still reach the chain
    cancel_from: int  # the same for cancels


class Landing(NamedTuple):
    block: int | None  # None: found on chain by a restarted relayer, block unknown
    at_ms: int  # when the relayer saw the block's first entries of the log on chain (unix ms)
    entries: int  # orders and cancels of the log in the block


@dataclass
class LoggedOrder:
    seq: int
    owner: str
    spec: OrderSpec
    signature: str
    status: str
    attempts: int
    received_ms: int

    @property
    def client_order_id(self) -> int:
        return self.spec.client_order_id

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> LoggedOrder:
        return cls(
            row["seq"],
            row["owner"],
            OrderSpec(**json.loads(row["spec"])),
            row["signature"],
            row["status"],
            row["attempts"],
            row["received_ms"],
        )


@dataclass
class LoggedCancel:
    seq: int
    owner: str
    client_order_id: int
    signature: str
    status: str
    attempts: int
    received_ms: int | None = None


def _first(rows: list[sqlite3.Row], limit: int, exclude: set[int]) -> Iterator[sqlite3.Row]:
    """The first `limit` rows whose seq is not in `exclude`. Only those are then built: with 14
    batches of 256 in flight, building every row read (3,840) for each batch took a sixth of
    the relayer's time in a profile."""
    return islice((r for r in rows if r["seq"] not in exclude), limit)


class OrderLog:
    def __init__(self, conn: sqlite3.Connection, commits: GroupCommit | None = None):
        """`commits`: the process's `log_commits()` (a log of its own without)."""
        self.conn = conn
        self.commits = commits or log_commits()
        self._grouped = False

    # -- the API's side ---------------------------------------------------------------------
    def together(self, work: Callable[[], T]) -> T:
        """`work()` as one write of the process's group commit: its appends and its reads of the
        log are made in the group's transaction, so they see its earlier appends, and this
        returns its result once the group has committed (its appends durable). If it raises,
        none of its appends is kept, and the group's other writes are. It may run on another
        thread (the group's leader), so it must use this log, not a connection of its own.

        A batch of orders used to take the log for itself instead, between two groups, and the
        process's other requests waited for its checks and its own fsync (batches' p99 3.0 s
        under `make loadtest --batch-share 0.8`)."""
        if self._grouped:
            raise RuntimeError("together() does not nest")

        def write(conn: sqlite3.Connection) -> T:
            own, self.conn, self._grouped = self.conn, conn, True
            try:
                return work()
            finally:
                self.conn, self._grouped = own, False

        return self.commits.run(self.conn, write)

    def _append(self, write: Callable[[sqlite3.Connection], Appended]) -> Appended:
        """`write` in the group's transaction (in `together`), or committed with the other
        threads' writes."""
        if self._grouped:
            return write(self.conn)
        return self.commits.run(self.conn, write)

    def append_order(
        self, owner: str, spec: OrderSpec, signature_hex: str, *, not_after_ms: int | None = None
    ) -> Appended:
        """Log an order (outcome "new"), or give the first answer of the same order ("same"),
        or refuse another order under its client order id ("conflict"). With `not_after_ms`,
        a new order that reaches the log's write lock later than that is not logged ("late"):
        the caller's checks were made for an earlier moment. Returns once the entry is durable
        (in `together`: the answer holds once it has returned)."""
        body = spec_json(spec)
        return self._append(
            lambda c: _write_order(c, owner, spec, body, signature_hex, not_after_ms)
        )

    def append_cancel(
        self,
        owner: str,
        client_order_id: int,
        signature_hex: str,
        *,
        not_after_ms: int | None = None,
    ) -> Appended:
        """Like append_order, for a cancel (outcomes "new", "same", "late")."""
        return self._append(
            lambda c: _write_cancel(c, owner, client_order_id, signature_hex, not_after_ms)
        )

    def order(self, owner: str, client_order_id: int) -> sqlite3.Row | None:
        return self.conn.execute(
            "SELECT * FROM orders WHERE owner = ? AND client_order_id = ?",
            (owner, str(client_order_id)),
        ).fetchone()

    def cancel(self, owner: str, client_order_id: int) -> sqlite3.Row | None:
        return self.conn.execute(
            "SELECT * FROM cancels WHERE owner = ? AND client_order_id = ?",
            (owner, str(client_order_id)),
        ).fetchone()

    def unsettled_bid_cost(self, owner: str) -> int:
        """Money units the owner's bids that are not on chain yet will hold once they are."""
        row = self.conn.execute(
            "SELECT cost FROM bids_awaiting_relay WHERE owner = ?", (owner,)
        ).fetchone()
        return 0 if row is None else row[0]

    def unrelayed(self) -> Unrelayed:
        """What an entry appended now waits behind: the orders and cancels not on chain yet and
        not refused (pending or in flight), and, per table, the lowest seq of an entry that may
        still reach the chain (the next seq when none waits): `landed`'s lower bounds. Reads the
        status indexes only as far as the backlog goes."""
        waiting, first = 0, {}
        for table in ("orders", "cancels"):
            n, lowest = self.conn.execute(
                f"SELECT count(*), min(seq) FROM {table} WHERE status IN (?, ?)",
                (PENDING, SUBMITTED),
            ).fetchone()
            if lowest is None:
                (lowest,) = self.conn.execute(
                    f"SELECT coalesce(max(seq), 0) + 1 FROM {table}"
                ).fetchone()
            waiting, first[table] = waiting + n, lowest
        return Unrelayed(waiting, first["orders"], first["cancels"])

    def landed(self, since_ms: int, order_from: int, cancel_from: int) -> list[Landing]:
        """The orders and cancels the relayer saw reach the chain after `since_ms` (unix ms), by
        block, oldest first: the relay's real pace. Entries refused (by the chain, or dropped by
        the relayer past their gate) are not among them. An entry that lands after a moment was
        waiting then or logged later, so `unrelayed()`'s seqs of that moment bound what is read
        (the status indexes from there on)."""
        by_block: dict[int | None, list[int]] = {}
        for table, first in (("orders", order_from), ("cancels", cancel_from)):
            for block, at_ms, n in self.conn.execute(
                f"SELECT block_number, min(updated_ms), count(*) FROM {table}"
                " WHERE status = ? AND seq >= ? AND updated_ms > ? GROUP BY block_number",
                (ONCHAIN, first, since_ms),
            ):
                seen = by_block.setdefault(block, [at_ms, 0])
                seen[0], seen[1] = min(seen[0], at_ms), seen[1] + n
        return sorted(
            (Landing(block, at_ms, n) for block, (at_ms, n) in by_block.items()),
            key=lambda landing: landing.at_ms,
        )

    def interval_count(self, interval: int) -> int:
        """Orders logged for the interval that are not known to be refused."""
        row = self.conn.execute(
            "SELECT orders FROM interval_orders WHERE interval = ?", (interval,)
        ).fetchone()
        return 0 if row is None else row[0]

    def open_unindexed(
        self, owner: str, interval: int, indexed_block: int | None
    ) -> dict[str, tuple[int, int]]:
        """The owner's logged orders for the interval that the index does not show yet (not
        refused, not on chain in a block up to `indexed_block`), by side: (those no cancel is
        logged for, those no cancel has reached the chain for). With the index's open orders,
        the first is what the owner holds in the interval; the second is what the chain still
        counts on that side (a cancel in the log is relayed after the orders before it). Reads
        the tally rows of the blocks after `indexed_block` (and of orders not on chain yet)."""
        rows = self.conn.execute(
            "SELECT side, sum(held), sum(counted) FROM unindexed_orders"
            " WHERE owner = ? AND interval = ? AND block > ? GROUP BY side HAVING sum(orders) > 0",
            (owner, interval, -1 if indexed_block is None else indexed_block),
        ).fetchall()
        return {side: (held, counted) for side, held, counted in rows}

    def refusals(self) -> dict[str, int]:
        """Orders the chain (or the relayer, for a gate passed) refused, by error."""
        return {
            row["error"] or "unknown": row["n"]
            for row in self.conn.execute(
                "SELECT error, count(*) AS n FROM orders WHERE status = ? GROUP BY error",
                (REJECTED,),
            )
        }

    def last_on_chain_ms(self) -> int | None:
        """When the log last saw one of its orders reach the chain (unix ms), or None."""
        return self.conn.execute(
            "SELECT max(updated_ms) FROM orders WHERE status = ?", (ONCHAIN,)
        ).fetchone()[0]

    def counts(self) -> dict[str, int]:
        return {
            row["status"]: row["n"]
            for row in self.conn.execute("SELECT status, count(*) AS n FROM orders GROUP BY status")
        }

    # -- the relayer's side -----------------------------------------------------------------
    def backlog(self, table: str) -> tuple[int, int | None]:
        """(entries waiting to be sent, received_ms of the oldest of them): the relay backlog.
        Reads the status index only as far as the backlog goes."""
        row = self.conn.execute(
            f"SELECT count(*) AS n, min(received_ms) AS oldest FROM {_table(table)}"
            " WHERE status = ?",
            (PENDING,),
        ).fetchone()
        return row["n"], row["oldest"]

    def pending_orders(self, limit: int, *, exclude: set[int] = frozenset()) -> list[LoggedOrder]:
        rows = self.conn.execute(
            "SELECT * FROM orders WHERE status = ? ORDER BY seq LIMIT ?",
            (PENDING, limit + len(exclude)),
        ).fetchall()
        return [LoggedOrder.from_row(r) for r in _first(rows, limit, exclude)]

    def pending_cancels(self, limit: int, *, exclude: set[int] = frozenset()) -> list[LoggedCancel]:
        """Cancels whose order has left the log's pending states (so the chain knows it, or the
        chain's verdict on it is final); cancels of orders placed elsewhere go at once."""
        rows = self.conn.execute(
            "SELECT c.* FROM cancels c LEFT JOIN orders o"
            " ON o.owner = c.owner AND o.client_order_id = c.client_order_id"
            " WHERE c.status = ? AND (o.seq IS NULL OR o.status IN (?, ?)) ORDER BY c.seq LIMIT ?",
            (PENDING, ONCHAIN, REJECTED, limit + len(exclude)),
        ).fetchall()
        return [
            LoggedCancel(
                r["seq"],
                r["owner"],
                int(r["client_order_id"]),
                r["signature"],
                r["status"],
                r["attempts"],
                r["received_ms"],
            )
            for r in _first(rows, limit, exclude)
        ]

    def submitted(self, table: str) -> list[sqlite3.Row]:
        return self.conn.execute(
            f"SELECT * FROM {_table(table)} WHERE status = ? ORDER BY seq", (SUBMITTED,)
        ).fetchall()

    def _update(self) -> AbstractContextManager[sqlite3.Connection]:
        """The relay-state writes (mark_*, back_to_pending): in `together`'s transaction (the
        relayer makes a step's writes in one, after its chain reads: one wait for the log's
        write lock and one fsync, not one a batch), or in one of their own."""
        return nullcontext(self.conn) if self._grouped else transaction(self.conn)

    # Each relay-state write is one statement over a JSON array of the entries: one step of
    # SQLite, so one release of the GIL. executemany steps once a row, and at each step the
    # relayer's thread waited for the GIL behind the workers' other threads while it held the
    # log's write lock: 2,000 rows held the API's appends for 90 ms to 1.2 s.
    def mark_submitted(self, table: str, seqs: list[int], tx_hash: str) -> None:
        with self._update() as c:
            c.execute(
                f"UPDATE {_table(table)} SET status = ?, tx_hash = ?, updated_ms = ?"
                " WHERE seq IN (SELECT value FROM json_each(?))",
                (SUBMITTED, tx_hash, now_ms(), json.dumps(seqs)),
            )

    def mark_onchain(
        self,
        table: str,
        items: list[tuple[int, int | None]],
        block_hash: str | None,
        block_number: int | None,
    ) -> None:
        """items: (seq, chain order id or None)."""
        with self._update() as c:
            if table == "orders":
                c.execute(
                    "UPDATE orders SET status = ?, order_id = item.value ->> 1, block_hash = ?,"
                    " block_number = ?, error = NULL, updated_ms = ?"
                    " FROM json_each(?) AS item WHERE orders.seq = item.value ->> 0",
                    (ONCHAIN, block_hash, block_number, now_ms(), json.dumps(items)),
                )
            else:
                c.execute(
                    "UPDATE cancels SET status = ?, block_hash = ?, block_number = ?, error = NULL,"
                    " updated_ms = ? WHERE seq IN (SELECT value ->> 0 FROM json_each(?))",
                    (ONCHAIN, block_hash, block_number, now_ms(), json.dumps(items)),
                )

    def mark_rejected(self, table: str, seq: int, error: str) -> None:
        with self._update() as c:
            c.execute(
                f"UPDATE {_table(table)} SET status = ?, error = ?, updated_ms = ? WHERE seq = ?",
                (REJECTED, error, now_ms(), seq),
            )

    def back_to_pending(
        self, table: str, seqs: list[int], *, solo: bool, error: str | None = None
    ) -> None:
        """Return entries to the queue; `solo` marks them to go one per extrinsic next time
        (their batch failed as a whole, so one of them is bad and must be found)."""
        with self._update() as c:
            c.execute(
                f"UPDATE {_table(table)} SET status = ?, attempts = attempts + ?, error = ?,"
                " updated_ms = ? WHERE seq IN (SELECT value FROM json_each(?))",
                (PENDING, 1 if solo else 0, error, now_ms(), json.dumps(seqs)),
            )


def _write_order(
    c: sqlite3.Connection,
    owner: str,
    spec: OrderSpec,
    body: str,
    signature_hex: str,
    not_after_ms: int | None,
) -> Appended:
    """append_order's writes, in the transaction holding the log's write lock."""
    row = c.execute(
        "SELECT seq, spec, response FROM orders WHERE owner = ? AND client_order_id = ?",
        (owner, str(spec.client_order_id)),
    ).fetchone()
    if row is not None:
        outcome = "same" if row["spec"] == body else "conflict"
        return Appended(outcome, json.loads(row["response"]), row["seq"])
    received = now_ms()
    if not_after_ms is not None and received > not_after_ms:
        return Appended("late", {}, 0)
    cur = c.execute(
        "INSERT INTO orders (owner, client_order_id, interval, side, spec, signature,"
        " received_ms, response, status, updated_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, '{}', ?, ?)",
        (
            owner,
            str(spec.client_order_id),
            spec.interval,
            spec.side,
            body,
            signature_hex,
            received,
            PENDING,
            received,
        ),
    )
    seq = cur.lastrowid
    response = {
        "status": "accepted",
        "order_ref": f"{owner}/{spec.client_order_id}",
        "log_seq": seq,
        "owner": owner,
        "client_order_id": spec.client_order_id,
        "interval": spec.interval,
        "received_ms": received,
    }
    c.execute(
        "UPDATE orders SET response = ? WHERE seq = ?", (json.dumps(response, sort_keys=True), seq)
    )
    return Appended("new", response, seq)


def _write_cancel(
    c: sqlite3.Connection,
    owner: str,
    client_order_id: int,
    signature_hex: str,
    not_after_ms: int | None,
) -> Appended:
    """append_cancel's writes, in the transaction holding the log's write lock."""
    row = c.execute(
        "SELECT seq, response FROM cancels WHERE owner = ? AND client_order_id = ?",
        (owner, str(client_order_id)),
    ).fetchone()
    if row is not None:
        return Appended("same", json.loads(row["response"]), row["seq"])
    received = now_ms()
    if not_after_ms is not None and received > not_after_ms:
        return Appended("late", {}, 0)
    cur = c.execute(
        "INSERT INTO cancels"
        " (owner, client_order_id, signature, received_ms, response, status, updated_ms)"
        " VALUES (?, ?, ?, ?, '{}', ?, ?)",
        (owner, str(client_order_id), signature_hex, received, PENDING, received),
    )
    seq = cur.lastrowid
    response = {
        "status": "accepted",
        "order_ref": f"{owner}/{client_order_id}",
        "log_seq": seq,
        "owner": owner,
        "client_order_id": client_order_id,
        "received_ms": received,
    }
    c.execute(
        "UPDATE cancels SET response = ? WHERE seq = ?", (json.dumps(response, sort_keys=True), seq)
    )
    return Appended("new", response, seq)


def _table(name: str) -> str:
    if name not in ("orders", "cancels"):
        raise ValueError(name)
    return name


__all__ = [
    "Appended",
    "Landing",
    "LoggedCancel",
    "LoggedOrder",
    "OrderLog",
    "ONCHAIN",
    "PENDING",
    "REJECTED",
    "SUBMITTED",
    "Unrelayed",
    "spec_json",
]
