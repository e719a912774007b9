"""The meter-reading ingest's durable queue (ingest.db): a reading is in it before anything is
sent, keyed by (meter, counter) so a reading can be queued twice but sent once; and the
anomalies ingest found, with the meter each site has.

Each queued reading keeps the genesis hash and accreditation epoch its signature binds; a
reading re-signed under a newer accreditation keeps its counter (`resign`). An ingest.db from
before those columns gets them on open, NULL for the readings already in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from market import now_ms

from .db import connect
from .schema import INGEST_SCHEMA


class SignedReading(Protocol):
    """A meter's signed reading (meter_bridge.MeterReading is one)."""

    meter: str
    genesis_hash: str
    epoch: int
    interval: int
    counter: int
    import_wh: int
    export_wh: int
    signature: str


@dataclass
class QueuedReading:
    meter: str
    counter: int
    interval: int
    import_wh: int
    export_wh: int
    signature: str
    site: str
    status: str = "pending"
    genesis_hash: str | None = None  # None: queued before readings were bound (v1 message)
    epoch: int | None = None


_COLUMNS = (
    "meter, counter, interval, import_wh, export_wh, signature, site, status, genesis_hash, epoch"
)


@dataclass
class Anomaly:
    site: str
    meter: str
    interval: int
    kind: str
    detail: str
    at_ms: int = field(default_factory=now_ms)


class ReadingQueue:
    """The durable queue: a reading is in it before anything is sent, keyed by (meter, counter)
    so a reading can be queued twice but sent once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.db = connect(self.path, INGEST_SCHEMA, synchronous="FULL")
        self.db.row_factory = None  # rows unpack into the dataclasses positionally

    def add(self, r: SignedReading, site: str) -> bool:
        """Queue a signed reading; False when it was queued already."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO readings (meter, counter, interval, import_wh, export_wh,"
            " signature, site, queued_ms, genesis_hash, epoch)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.meter,
                r.counter,
                r.interval,
                r.import_wh,
                r.export_wh,
                r.signature,
                site,
                now_ms(),
                r.genesis_hash,
                r.epoch,
            ),
        )
        return cur.rowcount == 1

    def resign(self, r: SignedReading) -> None:
        """Replace a pending reading's signature and binding by those of the same reading (same
        meter, counter, interval and registers) signed under a newer accreditation."""
        cur = self.db.execute(
            "UPDATE readings SET signature = ?, genesis_hash = ?, epoch = ?"
            " WHERE meter = ? AND counter = ? AND status = 'pending'"
            " AND interval = ? AND import_wh = ? AND export_wh = ?",
            (
                r.signature,
                r.genesis_hash,
                r.epoch,
                r.meter,
                r.counter,
                r.interval,
                r.import_wh,
                r.export_wh,
            ),
        )
        if cur.rowcount != 1:
            raise ValueError(
                f"no pending reading {r.counter} of {r.meter} with these registers to re-sign"
            )

    def last(self, meter: str) -> QueuedReading | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM readings WHERE meter = ? AND status != 'rejected'"
            " ORDER BY counter DESC LIMIT 1",
            (meter,),
        ).fetchone()
        return QueuedReading(*row) if row else None

    def pending(self) -> list[QueuedReading]:
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM readings WHERE status = 'pending' ORDER BY meter, counter"
        ).fetchall()
        return [QueuedReading(*row) for row in rows]

    def mark(
        self,
        meter: str,
        counter: int,
        status: str,
        *,
        error: str | None = None,
        block: int | None = None,
    ) -> None:
        self.db.execute(
            "UPDATE readings SET status = ?, error = ?, block = ? WHERE meter = ? AND counter = ?",
            (status, error, block, meter, counter),
        )

    def counts(self) -> dict[str, int]:
        return dict(
            self.db.execute("SELECT status, COUNT(*) FROM readings GROUP BY status").fetchall()
        )

    def record(self, a: Anomaly) -> None:
        self.db.execute(
            "INSERT INTO anomalies (site, meter, interval, kind, detail, at_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (a.site, a.meter, a.interval, a.kind, a.detail, a.at_ms),
        )

    def anomalies(self, kind: str | None = None) -> list[Anomaly]:
        sql = "SELECT site, meter, interval, kind, detail, at_ms FROM anomalies"
        rows = self.db.execute(
            sql + (" WHERE kind = ?" if kind else "") + " ORDER BY id", (kind,) if kind else ()
        ).fetchall()
        return [Anomaly(*row) for row in rows]

    def site_meter(self, site: str) -> str | None:
        row = self.db.execute("SELECT meter FROM sites WHERE name = ?", (site,)).fetchone()
        return row[0] if row else None

    def set_site_meter(self, site: str, meter: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO sites (name, meter) VALUES (?, ?)", (site, meter))

    def close(self) -> None:
        self.db.close()
