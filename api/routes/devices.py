"""Device configuration for the operator console: each meter's model and register map, its
Modbus address, polling period and demand-response settings, with its live status as the meter
ingest last saw it (`connected`, `stale` with the error, `unknown`) and an audit trail of every
change. A change is checked (store/devices.py), stored with the session's account, and applied
by the meter ingest without a restart, within about a second (offchain/ingest.py).

Every endpoint needs a session (POST /session) of the operator or the distributor: 401
NotAuthenticated without a valid token, 403 Forbidden for another role. The models of this
resource live here, beside the only router that uses them."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from meter_bridge import MODELS
from meter_bridge.registers import EastronMap, SunSpecMap
from store import devices as store
from store import queries

from ..auth import DeviceAdminSession
from ..deps import CursorQuery, LimitQuery, OpsDep
from ..errors import APIError
from ..models import ErrorPublic, Page
from ..pagination import decode_cursor, page

router = APIRouter(prefix="/devices", tags=["devices"])
# What decides which registers the ingest signs with a meter's key: the distributor's only.
METER_SOURCE_FIELDS = {"host", "port", "unit_id", "model"}

NAME_DESCRIPTION = (
    f"The device's (site's) name: 1 to {store.NAME_MAX_LENGTH} letters, digits, '.', '_' or '-'"
)
DeviceName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=store.NAME_MAX_LENGTH,
        pattern=store.NAME_PATTERN,
        description=NAME_DESCRIPTION,
    ),
]
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "NotAuthenticated: no valid session token"},
    403: {"model": ErrorPublic, "description": "Forbidden: not the operator or the distributor"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "UnknownDevice"}
}


# -- models -------------------------------------------------------------------------------------


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # optional in a PATCH, but never null


def _model_schema(schema: dict[str, Any]) -> None:
    _no_default(schema)
    schema["enum"] = list(MODELS)


def _bounded(field: str, description: str) -> Any:
    low, high = store.BOUNDS[field]
    return Field(
        None, strict=True, ge=low, le=high, description=description, json_schema_extra=_no_default
    )


class DeviceUpdate(BaseModel):
    """A partial change: only the fields given are changed (`curtail_limit_w: null` removes
    the curtailment). Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        None,
        description="The meter's model, which chooses its register map",
        json_schema_extra=_model_schema,
    )
    host: str = Field(
        None,
        strict=True,
        min_length=1,
        max_length=store.HOST_MAX_LENGTH,
        description="Hostname or IP address of the meter (or its Modbus TCP gateway)",
        json_schema_extra=_no_default,
    )
    port: int = _bounded("port", "Modbus TCP port")
    unit_id: int = _bounded("unit_id", "Modbus unit id (device id) of the meter")
    poll_period_s: int = _bounded("poll_period_s", "Seconds between two live reads")
    curtail_limit_w: int | None = Field(
        None,
        strict=True,
        ge=0,
        le=store.BOUNDS["curtail_limit_w"][1],
        description="The load limit a demand-response event sets, W; at most the rated power "
        "when that is known; null: none",
    )
    revert_timer_s: int = _bounded(
        "revert_timer_s", "Seconds after which a curtailment is lifted again; 0: not by itself"
    )


class RegisterPointPublic(BaseModel):
    quantity: Literal["import", "export", "power", "voltage", "current"]
    table: Literal["input registers", "holding registers"]
    address: int | None = Field(None, description="Register address (Eastron maps)")
    point: str | None = Field(None, description="SunSpec point name")
    offset: int | None = Field(None, description="SunSpec: registers after the model's ID register")
    encoding: str


class RegisterMapPublic(BaseModel):
    model: str
    kind: Literal["eastron", "sunspec"]
    sunspec_model_id: int | None = Field(
        None, description="SunSpec: the model found by walking the chain from 40000, 0 or 50000"
    )
    word_order: str
    points: list[RegisterPointPublic]


class DeviceStatusPublic(BaseModel):
    state: Literal["connected", "stale", "unknown"] = Field(
        description="connected: the last live read succeeded; stale: it failed (last_error); "
        "unknown: not read yet"
    )
    last_ok_ms: int | None = None
    last_error: str | None = None
    import_wh: int | None = Field(None, description="Registers of the last good read")
    export_wh: int | None = None
    power_w: int | None = Field(None, description="Net power, positive while importing")
    checked_ms: int | None = Field(None, description="The last read attempt, good or bad")
    applied_version: int | None = Field(None, description="The version the ingest runs")
    applied_ms: int | None = None
    applied: bool = Field(description="Whether the ingest runs the device's current version")


class DevicePublic(BaseModel):
    name: str
    model: str
    register_map: RegisterMapPublic | None = Field(
        description="Where the model's quantities are; null for a model this API does not know"
    )
    host: str
    port: int
    unit_id: int
    meter: str = Field(description="The meter's public key (0x hex)")
    rated_power_w: int | None = Field(None, description="null: not known")
    poll_period_s: int
    curtail_limit_w: int | None
    revert_timer_s: int
    version: int = Field(description="Goes up by one with every accepted change")
    updated_ms: int
    updated_by: str = Field(description="The account that made the last change, or 'sites file'")
    status: DeviceStatusPublic


class DeviceChangePublic(BaseModel):
    id: int
    at_ms: int
    by: str = Field(description="The session's account, or 'sites file'")
    field: str
    old: int | str | None = Field(description="null: set when the device was seeded")
    new: int | str | None


# -- endpoints ----------------------------------------------------------------------------------


@router.get(
    "", operation_id="list_devices", response_model=Page[DevicePublic], responses=AUTH_ERRORS
)
def list_devices(
    ops: OpsDep, session: DeviceAdminSession, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[DevicePublic]:
    """Every device's configuration and live status, by name."""
    key = decode_cursor(cursor, 1, str)
    found = store.devices(ops, after=key[0] if key else "", limit=limit + 1)
    found, nxt = page(found, limit, lambda d: [d.name])
    status = store.statuses(ops, [d.name for d in found])
    return Page[DevicePublic](items=[_public(d, status[d.name]) for d in found], next_cursor=nxt)


@router.get(
    "/{name}",
    operation_id="get_device",
    response_model=DevicePublic,
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def get_device(name: DeviceName, ops: OpsDep, session: DeviceAdminSession) -> DevicePublic:
    return _public(_device(ops, name), store.device_status(ops, name))


@router.patch(
    "/{name}",
    operation_id="update_device",
    response_model=DevicePublic,
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def update_device(
    name: DeviceName, body: DeviceUpdate, ops: OpsDep, session: DeviceAdminSession
) -> DevicePublic:
    """Change some of a device's settings (422 InvalidRequest naming the field at fault). Each
    field changed is recorded with the session's account; a value equal to the current one
    changes nothing. The meter ingest applies the new version within about a second (the
    answer's `status.applied` says whether it has yet).

    Where the meter is read and how (`host`, `port`, `unit_id`, `model`) decides what the
    ingest signs with the meter's key, so only the distributor, who accredits meters on
    chain, may change it (403 otherwise), and each such change raises an alert."""
    change = body.model_dump(exclude_unset=True)
    moved = sorted(set(change) & METER_SOURCE_FIELDS)
    if moved and "distributor" not in session.roles:
        raise APIError(
            403,
            "Forbidden",
            f"{', '.join(moved)}: where and how a meter is read is the distributor's to change",
        )
    try:
        updated = store.update_device(
            ops, name, change, by=session.account, models=MODELS, alert_on=METER_SOURCE_FIELDS
        )
    except store.UnknownDevice:
        raise _unknown(name) from None
    except store.InvalidDeviceChange as exc:
        raise APIError(422, "InvalidRequest", str(exc), field=exc.field) from None
    return _public(updated, store.device_status(ops, name))


@router.get(
    "/{name}/changes",
    operation_id="list_device_changes",
    response_model=Page[DeviceChangePublic],
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def list_device_changes(
    name: DeviceName,
    ops: OpsDep,
    session: DeviceAdminSession,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[DeviceChangePublic]:
    """Who changed what and when, newest first: one item per field of each accepted change
    (those of the sites file when the device was seeded included)."""
    _device(ops, name)
    key = decode_cursor(cursor, 1)
    rows = store.device_changes(
        ops, name, before=key[0] if key else queries.ABOVE_ALL, limit=limit + 1
    )
    rows, nxt = page(rows, limit, lambda c: [c.id])
    return Page[DeviceChangePublic](
        items=[
            DeviceChangePublic(id=c.id, at_ms=c.at_ms, by=c.by, field=c.field, old=c.old, new=c.new)
            for c in rows
        ],
        next_cursor=nxt,
    )


# -- helpers ------------------------------------------------------------------------------------


def _unknown(name: str) -> APIError:
    return APIError(404, "UnknownDevice", f"no device {name!r}")


def _device(ops: sqlite3.Connection, name: str) -> store.Device:
    found = store.device(ops, name)
    if found is None:
        raise _unknown(name)
    return found


def _public(d: store.Device, s: store.DeviceStatus) -> DevicePublic:
    config = {k: v for k, v in asdict(d).items() if k != "rated_power_w"}
    status = {k: v for k, v in asdict(s).items() if k != "name"}
    return DevicePublic(
        **config,
        register_map=register_map(d.model),
        rated_power_w=d.rated_power_w or None,
        status=DeviceStatusPublic(**status, applied=s.applied_version == d.version),
    )


def register_map(model: str) -> RegisterMapPublic | None:
    """Where the model's quantities are (meter_bridge/registers.py, docs/meter_bridge.md)."""
    m = MODELS.get(model)
    if m is None:  # stored under a version of meter_bridge that had it
        return None
    if isinstance(m, EastronMap):
        return RegisterMapPublic(
            model=model,
            kind="eastron",
            word_order=m.word_order,
            points=[
                RegisterPointPublic(
                    quantity=q, table=m.table.value, address=a, encoding=f"float32, {unit}"
                )
                for q, a, unit in (
                    ("import", m.import_register, "kWh"),
                    ("export", m.export_register, "kWh"),
                    ("power", m.power_register, "W"),
                    ("voltage", m.voltage_register, "V"),
                    ("current", m.current_register, "A"),
                )
            ],
        )
    assert isinstance(m, SunSpecMap)
    points = []
    for q, name in (
        ("import", m.import_point),
        ("export", m.export_point),
        ("power", m.power_point),
        ("voltage", m.voltage_point),
        ("current", m.current_point),
    ):
        if name is None:
            continue
        p = m.point(name)
        points.append(
            RegisterPointPublic(
                quantity=q,
                table=m.table.value,
                point=p.name,
                offset=p.offset,
                encoding=p.kind + (f" x 10^{p.sf}" if p.sf else ""),
            )
        )
    return RegisterMapPublic(
        model=model,
        kind="sunspec",
        sunspec_model_id=m.model_id,
        word_order=m.word_order,
        points=points,
    )


__all__ = [
    "DeviceChangePublic",
    "DevicePublic",
    "DeviceStatusPublic",
    "DeviceUpdate",
    "RegisterMapPublic",
    "RegisterPointPublic",
    "register_map",
    "router",
]
