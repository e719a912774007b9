"""The embedded stores (SQLite in WAL mode) in a data folder: the order log, the chain index, the
operator's record and the ingest queue, with their schemas and the shared read-side queries."""

from . import queries
from .db import DataDir, ThreadConnection, alert, connect, transaction
from .orderlog import OrderLog, spec_json
from .queries import report_from_index
from .readings import Anomaly, QueuedReading, ReadingQueue
from .schema import INDEX_SCHEMA, INGEST_SCHEMA, OPS_SCHEMA, ORDERS_SCHEMA

__all__ = [
    "Anomaly",
    "DataDir",
    "INDEX_SCHEMA",
    "INGEST_SCHEMA",
    "OPS_SCHEMA",
    "ORDERS_SCHEMA",
    "OrderLog",
    "QueuedReading",
    "ReadingQueue",
    "ThreadConnection",
    "alert",
    "connect",
    "queries",
    "report_from_index",
    "spec_json",
    "transaction",
]
