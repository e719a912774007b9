"""The embedded stores (SQLite in WAL mode) in a data folder: the order log, the chain index, the
operator's record (with the device configuration) and the ingest queue, with their schemas and
the shared read-side queries."""

from . import devices, queries
from .db import DataDir, ThreadConnection, alert, connect, transaction
from .devices import (
    Device,
    DeviceChange,
    DeviceSeed,
    DeviceStatus,
    InvalidDeviceChange,
    UnknownDevice,
)
from .orderlog import OrderLog, spec_json
from .queries import report_from_index
from .readings import Anomaly, QueuedReading, ReadingQueue
from .schema import INDEX_SCHEMA, INGEST_SCHEMA, OPS_SCHEMA, ORDERS_SCHEMA

__all__ = [
    "Anomaly",
    "DataDir",
    "Device",
    "DeviceChange",
    "DeviceSeed",
    "DeviceStatus",
    "INDEX_SCHEMA",
    "INGEST_SCHEMA",
    "InvalidDeviceChange",
    "OPS_SCHEMA",
    "ORDERS_SCHEMA",
    "OrderLog",
    "QueuedReading",
    "ReadingQueue",
    "ThreadConnection",
    "UnknownDevice",
    "alert",
    "connect",
    "devices",
    "queries",
    "report_from_index",
    "spec_json",
    "transaction",
]
