"""Device configuration (ops.db): each metering point's meter model, Modbus address, polling
period and demand-response settings; an audit row for every field a change touches (who, when,
old and new value); and each device's live status as the meter ingest last saw it.

The sites file seeds a device the first time its name is seen; from then on this store is the
source of truth, and the sites file only provides the meter's key (kept here as its public key,
`meter`, never the key itself). Every accepted change bumps the device's `version`; the ingest
worker (offchain/ingest.py) applies a version it has not applied yet within about a second and
records it in the device's status (`applied_version`, `applied_ms`). The API edits devices
(api/routes/devices.py); the checks live here, so every writer passes the same ones.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sqlite3
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from market import now_ms

from .db import alert, transaction
from .queries import ABOVE_ALL

DEFAULT_POLL_PERIOD_S = 10
DEFAULT_REVERT_TIMER_S = 0  # no automatic revert of a curtailment unless one is configured
SITES_FILE = "sites file"  # `by` of what seeding wrote

# A device's name: it appears in the API's paths, so URL-safe characters only, checked (length
# first) before it is used.
NAME_MAX_LENGTH = 64
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
HOST_MAX_LENGTH = 253
# Inclusive bounds of the integer settings.
BOUNDS: dict[str, tuple[int, int]] = {
    "port": (1, 65_535),
    "unit_id": (1, 247),  # Modbus unit ids; 0 is broadcast, 248-255 reserved
    "poll_period_s": (1, 3_600),
    "revert_timer_s": (0, 86_400),
    "curtail_limit_w": (0, 2**32 - 1),  # the board's load-limit register is a uint32
    "rated_power_w": (0, 2**32 - 1),  # 0: not known
}
# What a change may touch (the meter key and the rated power come from the sites file).
EDITABLE = (
    "model",
    "host",
    "port",
    "unit_id",
    "poll_period_s",
    "curtail_limit_w",
    "revert_timer_s",
)
STATES = ("connected", "stale", "unknown")
State = Literal["connected", "stale", "unknown"]

_NAME = re.compile(NAME_PATTERN[1:-1])
# RFC 1123 labels, and "_" too (container and service names have it)
_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_METER = re.compile(r"0x[0-9a-f]{64}")


@dataclass(frozen=True)
class Device:
    """A device's configuration, as stored."""

    name: str
    model: str
    host: str
    port: int
    unit_id: int
    meter: str  # 0x + the public key of the site's meter key
    rated_power_w: int  # 0: not known
    poll_period_s: int
    curtail_limit_w: int | None  # None: no curtailment configured
    revert_timer_s: int
    version: int
    updated_ms: int
    updated_by: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port} unit {self.unit_id}"


@dataclass(frozen=True)
class DeviceSeed:
    """What the sites file says of a device: taken only for a name not stored yet (the meter
    key excepted, which the sites file always provides)."""

    name: str
    model: str
    host: str
    port: int
    unit_id: int
    meter: str
    rated_power_w: int = 0


@dataclass(frozen=True)
class DeviceStatus:
    """What the ingest last saw of a device: `connected` (its last live read succeeded),
    `stale` (it failed: `last_error`; the registers are those of the last good read) or
    `unknown` (not read yet)."""

    name: str
    state: State = "unknown"
    last_ok_ms: int | None = None
    last_error: str | None = None
    import_wh: int | None = None
    export_wh: int | None = None
    power_w: int | None = None
    checked_ms: int | None = None  # the last read attempt, good or bad
    applied_version: int | None = None
    applied_ms: int | None = None


@dataclass(frozen=True)
class DeviceChange:
    """One field of one accepted change (old and new as JSON values; old is None when seeded)."""

    id: int
    name: str
    at_ms: int
    by: str
    field: str
    old: Any
    new: Any


class InvalidDeviceChange(ValueError):
    """A change (or a seed) refused: `field` names the value at fault."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class UnknownDevice(LookupError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no device {name!r}")


_DEVICE_COLUMNS = tuple(f.name for f in fields(Device))
_STATUS_COLUMNS = tuple(f.name for f in fields(DeviceStatus))


# -- checks -------------------------------------------------------------------------------------


def valid_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= NAME_MAX_LENGTH and bool(_NAME.fullmatch(name))


def valid_host(host: object) -> bool:
    """A hostname (dot-separated labels of letters, digits, '-' and '_', at most 63 each, not
    starting or ending with '-', the last one not all digits) or an IPv4/IPv6 address."""
    if not isinstance(host, str) or not 0 < len(host) <= HOST_MAX_LENGTH:
        return False
    if any(c.isspace() for c in host):
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return all(_HOST_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def check_value(field: str, value: Any, *, models: Collection[str], rated_power_w: int = 0) -> Any:
    """`value` for `field` as stored (a model name in lower case), or InvalidDeviceChange."""
    if field == "model":
        if not isinstance(value, str) or value.lower() not in models:
            raise InvalidDeviceChange(field, f"{value!r} is not a known model: {', '.join(models)}")
        return value.lower()
    if field == "host":
        if not valid_host(value):
            shown = value[:40] + "..." if isinstance(value, str) and len(value) > 40 else value
            raise InvalidDeviceChange(
                field,
                f"{shown!r} is not a hostname or an IP address "
                f"(at most {HOST_MAX_LENGTH} characters, no spaces)",
            )
        return value
    if field == "meter":
        if not isinstance(value, str) or not _METER.fullmatch(value):
            raise InvalidDeviceChange(field, "must be 0x + a 32-byte public key in lower-case hex")
        return value
    if field not in BOUNDS:
        raise InvalidDeviceChange(field, f"not a device setting; a change may set {EDITABLE}")
    if field == "curtail_limit_w" and value is None:
        return None  # no curtailment configured
    low, high = BOUNDS[field]
    if field == "curtail_limit_w" and rated_power_w > 0:
        high = rated_power_w
    if type(value) is not int or not low <= value <= high:
        limit = " (the rated power)" if field == "curtail_limit_w" and rated_power_w > 0 else ""
        raise InvalidDeviceChange(field, f"must be an integer {low}..{high}{limit}, not {value!r}")
    return value


def validate_change(
    current: Device, change: Mapping[str, Any], *, models: Collection[str]
) -> dict[str, Any]:
    """The change's values as they would be stored; InvalidDeviceChange naming the first field
    at fault (an unknown field, a wrong type, a value out of its bounds)."""
    for field in change:
        if field not in EDITABLE:
            raise InvalidDeviceChange(
                field, f"not an editable setting; editable: {', '.join(EDITABLE)}"
            )
    return {
        field: check_value(field, value, models=models, rated_power_w=current.rated_power_w)
        for field, value in change.items()
    }


# -- reads --------------------------------------------------------------------------------------


def _device(row: sqlite3.Row | tuple[Any, ...]) -> Device:
    return Device(*tuple(row))


def devices(conn: sqlite3.Connection, *, after: str = "", limit: int | None = None) -> list[Device]:
    """Devices by name, those after `after`; at most `limit` (all without one)."""
    rows = conn.execute(
        f"SELECT {', '.join(_DEVICE_COLUMNS)} FROM devices WHERE name > ? ORDER BY name LIMIT ?",
        (after, -1 if limit is None else limit),
    ).fetchall()
    return [_device(r) for r in rows]


def device(conn: sqlite3.Connection, name: str) -> Device | None:
    row = conn.execute(
        f"SELECT {', '.join(_DEVICE_COLUMNS)} FROM devices WHERE name = ?", (name,)
    ).fetchone()
    return _device(row) if row else None


def versions(conn: sqlite3.Connection) -> dict[str, int]:
    """Each device's version: what the ingest compares, about once a second, with what it
    applied."""
    return {name: v for name, v in conn.execute("SELECT name, version FROM devices")}


def statuses(
    conn: sqlite3.Connection, names: Iterable[str] | None = None
) -> dict[str, DeviceStatus]:
    """The status of the devices named (all without names); `unknown` for one never read."""
    sql = f"SELECT {', '.join(_STATUS_COLUMNS)} FROM device_status"
    wanted = None if names is None else list(names)
    if wanted is None:
        rows = conn.execute(sql).fetchall()
    else:  # a page of names at most: well below SQLite's limit on parameters
        rows = conn.execute(
            f"{sql} WHERE name IN ({', '.join('?' * len(wanted))})", wanted
        ).fetchall()
    found = {r[0]: DeviceStatus(*tuple(r)) for r in rows}
    return {n: found.get(n) or DeviceStatus(n) for n in (found if wanted is None else wanted)}


def device_status(conn: sqlite3.Connection, name: str) -> DeviceStatus:
    return statuses(conn, [name])[name]


def device_changes(
    conn: sqlite3.Connection, name: str, *, before: int = ABOVE_ALL, limit: int
) -> list[DeviceChange]:
    """A device's audit rows with an id below `before`, newest first; at most `limit`."""
    rows = conn.execute(
        'SELECT id, name, at_ms, "by", field, old, new FROM device_changes'
        " WHERE name = ? AND id < ? ORDER BY id DESC LIMIT ?",
        (name, before, limit),
    ).fetchall()
    return [DeviceChange(r[0], r[1], r[2], r[3], r[4], _decode(r[5]), _decode(r[6])) for r in rows]


def _decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _audit(
    conn: sqlite3.Connection, name: str, at_ms: int, by: str, field: str, old: Any, new: Any
) -> None:
    conn.execute(
        'INSERT INTO device_changes (name, at_ms, "by", field, old, new) VALUES (?, ?, ?, ?, ?, ?)',
        (name, at_ms, by, field, json.dumps(old), json.dumps(new)),
    )


# -- writes -------------------------------------------------------------------------------------


def seed_devices(
    conn: sqlite3.Connection, seeds: Iterable[DeviceSeed], *, models: Collection[str]
) -> list[str]:
    """Store the devices of the sites file whose names are not stored yet (with the default
    period and no curtailment), each field audited as set by the sites file; for a stored one
    take only its meter key, if it changed (a swapped meter: a new version). Every seed is
    checked first (InvalidDeviceChange, naming the site). Returns the names added or changed."""
    checked = []
    for s in seeds:
        if not valid_name(s.name):
            raise InvalidDeviceChange(
                "name",
                f"site name {s.name!r} must be 1..{NAME_MAX_LENGTH} letters, digits, '.', '_' "
                "or '-', starting with a letter or digit",
            )
        try:
            values = {
                f: check_value(f, getattr(s, f), models=models)
                for f in ("model", "host", "port", "unit_id", "meter", "rated_power_w")
            }
        except InvalidDeviceChange as exc:
            raise InvalidDeviceChange(exc.field, f"site {s.name}: {exc.message}") from None
        checked.append((s.name, values))
    touched = []
    at = now_ms()
    with transaction(conn):
        for name, values in checked:
            current = device(conn, name)
            if current is None:
                stored = {
                    **values,
                    "poll_period_s": DEFAULT_POLL_PERIOD_S,
                    "curtail_limit_w": None,
                    "revert_timer_s": DEFAULT_REVERT_TIMER_S,
                }
                conn.execute(
                    f"INSERT INTO devices (name, {', '.join(stored)}, version, updated_ms,"
                    f" updated_by) VALUES (?, {', '.join('?' * len(stored))}, 1, ?, ?)",
                    (name, *stored.values(), at, SITES_FILE),
                )
                for field, value in stored.items():
                    _audit(conn, name, at, SITES_FILE, field, None, value)
                touched.append(name)
            elif current.meter != values["meter"]:
                conn.execute(
                    "UPDATE devices SET meter = ?, version = version + 1, updated_ms = ?,"
                    " updated_by = ? WHERE name = ?",
                    (values["meter"], at, SITES_FILE, name),
                )
                _audit(conn, name, at, SITES_FILE, "meter", current.meter, values["meter"])
                touched.append(name)
    return touched


def update_device(
    conn: sqlite3.Connection,
    name: str,
    change: Mapping[str, Any],
    *,
    by: str,
    models: Collection[str],
    alert_on: Collection[str] = (),
) -> Device:
    """Apply a partial change to a device, checked (InvalidDeviceChange), in one transaction:
    the fields that differ from the stored ones are written, the version goes up by one and
    each such field gets an audit row with `by`. A change of a field in `alert_on` also raises
    a `MeterSourceChanged` alert, in the same transaction, naming the fields and `by` (not
    their values: alerts are public, the audit trail is not). A change that alters nothing is
    a no-op (no new version, no audit row). UnknownDevice if there is no such device. Returns
    the device."""
    if not by:
        raise ValueError("a change needs who made it")
    at = now_ms()
    with transaction(conn):
        current = device(conn, name)
        if current is None:
            raise UnknownDevice(name)
        values = validate_change(current, change, models=models)
        changed = {f: v for f, v in values.items() if getattr(current, f) != v}
        if not changed:
            return current
        assignments = ", ".join(f"{f} = ?" for f in changed)
        conn.execute(
            f"UPDATE devices SET {assignments}, version = version + 1, updated_ms = ?,"
            " updated_by = ? WHERE name = ?",
            (*changed.values(), at, by, name),
        )
        for field, value in changed.items():
            _audit(conn, name, at, by, field, getattr(current, field), value)
        moved = [f for f in changed if f in alert_on]
        if moved:
            alert(
                conn,
                "api",
                "MeterSourceChanged",
                f"device {name}: {', '.join(moved)} changed by {by}"
                " (where and how its meter is read: see its change history)",
            )
        updated = device(conn, name)
    assert updated is not None
    return updated


def record_status(
    conn: sqlite3.Connection,
    name: str,
    *,
    state: State,
    at_ms: int,
    error: str | None = None,
    import_wh: int | None = None,
    export_wh: int | None = None,
    power_w: int | None = None,
) -> None:
    """A live read of a device: `connected` with its registers, or `stale` with the error (the
    registers and `last_ok_ms` of the last good read stay)."""
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, not {state!r}")
    if state == "connected":
        conn.execute(
            "INSERT INTO device_status (name, state, last_ok_ms, last_error, import_wh,"
            " export_wh, power_w, checked_ms) VALUES (?, ?, ?, NULL, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
            " last_ok_ms = excluded.last_ok_ms, last_error = NULL,"
            " import_wh = excluded.import_wh, export_wh = excluded.export_wh,"
            " power_w = excluded.power_w, checked_ms = excluded.checked_ms",
            (name, state, at_ms, import_wh, export_wh, power_w, at_ms),
        )
    else:
        conn.execute(
            "INSERT INTO device_status (name, state, last_error, checked_ms) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
            " last_error = excluded.last_error, checked_ms = excluded.checked_ms",
            (name, state, error, at_ms),
        )


def record_applied(conn: sqlite3.Connection, name: str, version: int, *, at_ms: int) -> None:
    """The ingest runs `version` of the device's configuration since `at_ms`."""
    conn.execute(
        "INSERT INTO device_status (name, applied_version, applied_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET applied_version = excluded.applied_version,"
        " applied_ms = excluded.applied_ms",
        (name, version, at_ms),
    )


__all__ = [
    "BOUNDS",
    "DEFAULT_POLL_PERIOD_S",
    "DEFAULT_REVERT_TIMER_S",
    "EDITABLE",
    "HOST_MAX_LENGTH",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "SITES_FILE",
    "STATES",
    "Device",
    "DeviceChange",
    "DeviceSeed",
    "DeviceStatus",
    "InvalidDeviceChange",
    "UnknownDevice",
    "check_value",
    "device",
    "device_changes",
    "device_status",
    "devices",
    "record_applied",
    "record_status",
    "seed_devices",
    "statuses",
    "update_device",
    "valid_host",
    "valid_name",
    "validate_change",
]
