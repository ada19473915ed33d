"""All SQL of electronic monitoring: orders, renewals, devices, assignments, zones, the
tracking outbox, and what tracking is told of a device."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from casemgr.db import rows_affected
from casemgr.errors import Conflict
from casemgr.monitoring.schemas import Absence, Device, MonitoringOrder, MonitoringReason, Renewal, Zone

_REASONS = "SELECT code, label FROM monitoring_reasons WHERE active ORDER BY code"
_REASON_ACTIVE = "SELECT EXISTS (SELECT 1 FROM monitoring_reasons WHERE code = $1 AND active)"
_CASE_STATE = "SELECT program::text, status::text, org_unit_id FROM cases WHERE id = $1"
_UNIT_KIND = "SELECT kind::text FROM org_units WHERE id = $1"

_ORDER_COLUMNS = """
o.id, o.case_id, o.reason_code, o.legal_basis, o.assessment_ref, o.status::text AS status,
(o.status = 'active' AND o.starts_at <= $2::timestamptz AND o.ends_at > $2::timestamptz) AS in_force,
o.requested_by, o.requested_at, o.decided_by, o.decided_at, o.decision_note, o.starts_at, o.ends_at,
o.time_zone, o.ended_at, o.end_reason,
(SELECT a.device_id FROM device_assignments a WHERE a.order_id = o.id AND a.released_at IS NULL) AS device_id
"""
_ORDER = f"SELECT {_ORDER_COLUMNS} FROM monitoring_orders o WHERE o.id = $1"
_ORDERS_OF_CASE = f"SELECT {_ORDER_COLUMNS} FROM monitoring_orders o WHERE o.case_id = $1 ORDER BY o.id"
# What the object check needs before reading the order: its case (the case check does the rest).
_ORDER_CASE = "SELECT case_id, status::text, requested_by, ends_at FROM monitoring_orders WHERE id = $1"
_LOCK_ORDER = "SELECT id FROM monitoring_orders WHERE id = $1 FOR UPDATE"
_INSERT_ORDER = """
INSERT INTO monitoring_orders (case_id, reason_code, legal_basis, assessment_ref, requested_by, requested_at,
                               starts_at, first_ends_at, ends_at, time_zone)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)
RETURNING id
"""
_DECIDE_ORDER = """
UPDATE monitoring_orders
   SET status = $2::monitoring_order_status, decided_by = $3, decided_at = $4, decision_note = $5
 WHERE id = $1 AND status = 'requested'
"""
_END_ORDER = """
UPDATE monitoring_orders SET status = 'ended', ended_at = $2, end_reason = $3
 WHERE id = $1 AND status = 'active'
"""
_EXTEND_ORDER = (
    "UPDATE monitoring_orders SET ends_at = $3 WHERE id = $1 AND ends_at = $2 AND status = 'active'"
)

_RENEWAL_COLUMNS = """
r.id, r.order_id, r.assessment_ref, r.previous_ends_at, r.new_ends_at, r.status::text AS status,
r.requested_by, r.requested_at, r.decided_by, r.decided_at, r.decision_note
"""
_RENEWALS = f"SELECT {_RENEWAL_COLUMNS} FROM monitoring_renewals r WHERE r.order_id = $1 ORDER BY r.id"
_RENEWAL = f"SELECT {_RENEWAL_COLUMNS} FROM monitoring_renewals r WHERE r.id = $1 AND r.order_id = $2"
_ASSESSMENT_USED = """
SELECT EXISTS (SELECT 1 FROM monitoring_orders WHERE id = $1 AND assessment_ref = $2)
    OR EXISTS (SELECT 1 FROM monitoring_renewals WHERE order_id = $1 AND assessment_ref = $2)
"""
_INSERT_RENEWAL = """
INSERT INTO monitoring_renewals (order_id, assessment_ref, previous_ends_at, new_ends_at,
                                 requested_by, requested_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""
_DECIDE_RENEWAL = """
UPDATE monitoring_renewals
   SET status = $3::renewal_status, decided_by = $4, decided_at = $5, decision_note = $6
 WHERE id = $1 AND order_id = $2 AND status = 'requested'
"""

_DEVICE_COLUMNS = """
d.id, d.org_unit_id, d.reporting_interval_s, d.registered_at, d.retired_at,
(SELECT a.order_id FROM device_assignments a WHERE a.device_id = d.id AND a.released_at IS NULL) AS order_id
"""
_DEVICE = f"SELECT {_DEVICE_COLUMNS} FROM devices d WHERE d.id = $1"
_DEVICES = f"""
SELECT {_DEVICE_COLUMNS}
  FROM devices d JOIN org_units u ON u.id = d.org_unit_id
 WHERE u.path <@ $1::ltree AND ($2::text IS NULL OR d.id > $2)
 ORDER BY d.id
 LIMIT $3
"""
_INSERT_DEVICE = """
INSERT INTO devices (id, org_unit_id, secret_sealed, reporting_interval_s, registered_by, registered_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""
_SET_SECRET = "UPDATE devices SET secret_sealed = $2 WHERE id = $1 AND retired_at IS NULL"
_DEVICE_OF_ORDER = "SELECT device_id FROM device_assignments WHERE order_id = $1 AND released_at IS NULL"
_ASSIGN = """
INSERT INTO device_assignments (device_id, order_id, assigned_by, assigned_at) VALUES ($1, $2, $3, $4)
"""
_RELEASE = """
UPDATE device_assignments SET released_by = $2, released_at = $3
 WHERE order_id = $1 AND released_at IS NULL
RETURNING device_id
"""

_ZONE_COLUMNS = """
z.id, z.order_id, z.kind::text AS kind, z.label, z.shape::text AS shape, z.buffer_m,
z.schedule::text AS schedule,
z.grace_minutes, z.created_by, z.created_at
"""
_ZONES = f"SELECT {_ZONE_COLUMNS} FROM zones z WHERE z.order_id = $1 AND z.removed_at IS NULL ORDER BY z.id"
_ZONE_ORDER = "SELECT zone_order($1)"
_ORDER_CASE_ID = "SELECT monitoring_order_case($1)"
_DEVICE_PATH = "SELECT device_locator($1)::text"
_INSERT_ZONE = """
INSERT INTO zones (order_id, kind, label, shape, buffer_m, schedule, grace_minutes, created_by, created_at)
VALUES ($1, $2::zone_kind, $3, $4::jsonb, $5, $6::jsonb, $7, $8, $9)
RETURNING id
"""
_REMOVE_ZONE = "UPDATE zones SET removed_by = $2, removed_at = $3 WHERE id = $1 AND removed_at IS NULL"

_ABSENCE_COLUMNS = """
p.id, p.order_id, p.zone_ids, p.starts_at, p.ends_at, p.reason, p.granted_by, p.granted_at, p.revoked_by,
p.revoked_at
"""
_ABSENCES = f"SELECT {_ABSENCE_COLUMNS} FROM absence_permissions p WHERE p.order_id = $1 ORDER BY p.id"
_ABSENCE = f"SELECT {_ABSENCE_COLUMNS} FROM absence_permissions p WHERE p.id = $1 AND p.order_id = $2"
_INSERT_ABSENCE = """
INSERT INTO absence_permissions (order_id, zone_ids, starts_at, ends_at, reason, granted_by, granted_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""
# A permission granted after the fact covers the open alerts already raised inside it.
_COVER_RAISED = """
UPDATE alerts SET covered_by_absence_id = $1
 WHERE order_id = $2 AND status <> 'resolved' AND covered_by_absence_id IS NULL
   AND raised_at >= $3 AND raised_at < $4
   AND details ->> 'zone_id' IS NOT NULL AND (details ->> 'zone_id')::bigint = ANY ($5::bigint[])
"""
_REVOKE_ABSENCE = """
UPDATE absence_permissions SET revoked_by = $3, revoked_at = $4
 WHERE id = $1 AND order_id = $2 AND revoked_at IS NULL
"""

# --- what tracking is told ------------------------------------------------------------------
# Serialises every change to one device's configuration, so versions follow commit order.
_LOCK_DEVICE_CONFIG = "SELECT pg_advisory_xact_lock(hashtext('tracking-device:' || $1))"
_NEXT_VERSION = "SELECT nextval('tracking_config_version')"
_DEVICE_CONFIG = """
SELECT d.id, d.secret_sealed, d.reporting_interval_s, d.retired_at,
       o.id AS order_id, o.case_id, c.org_unit_id, o.starts_at, o.ends_at, o.time_zone
  FROM devices d
  LEFT JOIN device_assignments a ON a.device_id = d.id AND a.released_at IS NULL
  LEFT JOIN monitoring_orders o ON o.id = a.order_id AND o.status = 'active'
  LEFT JOIN cases c ON c.id = o.case_id
 WHERE d.id = $1
"""
_QUEUE = """
INSERT INTO tracking_outbox (device_id) VALUES ($1)
ON CONFLICT (device_id) DO UPDATE SET queued_at = clock_timestamp()
RETURNING queued_at
"""
_DEQUEUE = "DELETE FROM tracking_outbox WHERE device_id = $1 AND queued_at <= $2"
_QUEUED = """
SELECT device_id, queued_at FROM tracking_outbox WHERE queued_at < $1 ORDER BY queued_at LIMIT $2
"""
_QUEUE_ALL = """
INSERT INTO tracking_outbox (device_id) SELECT id FROM devices
ON CONFLICT (device_id) DO UPDATE SET queued_at = clock_timestamp()
"""

_order_decoder = msgspec.json.Decoder(Any)


async def reasons(conn: asyncpg.Connection) -> list[MonitoringReason]:
    return [MonitoringReason(code=r["code"], label=r["label"]) for r in await conn.fetch(_REASONS)]


async def reason_active(conn: asyncpg.Connection, code: str) -> bool:
    return bool(await conn.fetchval(_REASON_ACTIVE, code))


async def case_state(conn: asyncpg.Connection, case_id: int) -> tuple[str, str, int] | None:
    row = await conn.fetchrow(_CASE_STATE, case_id)
    return None if row is None else (row[0], row[1], row[2])


async def unit_kind(conn: asyncpg.Connection, org_unit_id: int) -> str | None:
    kind: str | None = await conn.fetchval(_UNIT_KIND, org_unit_id)
    return kind


class OrderFacts(msgspec.Struct, frozen=True):
    case_id: int
    status: str
    requested_by: int
    ends_at: datetime


async def order_facts(conn: asyncpg.Connection, order_id: int) -> OrderFacts | None:
    row = await conn.fetchrow(_ORDER_CASE, order_id)
    return None if row is None else OrderFacts(row[0], row[1], row[2], row[3])


async def order_case_id(conn: asyncpg.Connection, order_id: int) -> int | None:
    """The order's case, whether or not the caller may see the order (for the object check)."""
    case_id: int | None = await conn.fetchval(_ORDER_CASE_ID, order_id)
    return case_id


async def device_path(conn: asyncpg.Connection, device_id: str) -> str | None:
    """The org-tree path of the device's office, whatever the caller may see."""
    path: str | None = await conn.fetchval(_DEVICE_PATH, device_id)
    return path


async def lock_order(conn: asyncpg.Connection, order_id: int) -> None:
    await conn.execute(_LOCK_ORDER, order_id)


def _zone(record: asyncpg.Record) -> Zone:
    values = dict(record)
    values["shape"] = _order_decoder.decode(values["shape"])
    values["schedule"] = None if values["schedule"] is None else _order_decoder.decode(values["schedule"])
    return msgspec.convert(values, Zone)


async def zones(conn: asyncpg.Connection, order_id: int) -> list[Zone]:
    return [_zone(r) for r in await conn.fetch(_ZONES, order_id)]


async def renewals(conn: asyncpg.Connection, order_id: int) -> list[Renewal]:
    return [msgspec.convert(dict(r), Renewal) for r in await conn.fetch(_RENEWALS, order_id)]


async def renewal(conn: asyncpg.Connection, order_id: int, renewal_id: int) -> Renewal | None:
    row = await conn.fetchrow(_RENEWAL, renewal_id, order_id)
    return None if row is None else msgspec.convert(dict(row), Renewal)


async def order(conn: asyncpg.Connection, order_id: int, now: datetime) -> MonitoringOrder | None:
    row = await conn.fetchrow(_ORDER, order_id, now)
    if row is None:
        return None
    return msgspec.convert(
        {**dict(row), "zones": await zones(conn, order_id), "renewals": await renewals(conn, order_id)},
        MonitoringOrder,
    )


async def orders_of_case(
    conn: asyncpg.Connection, case_id: int, now: datetime, *, whole: bool = False
) -> list[MonitoringOrder]:
    """The case's orders, oldest first; `whole` adds each one's zones and renewals (a case has a
    handful of orders, so a query or two more each is cheaper than one query that nests them)."""
    found = []
    for row in await conn.fetch(_ORDERS_OF_CASE, case_id, now):
        values = dict(row)
        if whole:
            values["zones"] = await zones(conn, row["id"])
            values["renewals"] = await renewals(conn, row["id"])
        found.append(msgspec.convert(values, MonitoringOrder))
    return found


async def insert_order(conn: asyncpg.Connection, **values: Any) -> int:
    try:
        order_id: int = await conn.fetchval(
            _INSERT_ORDER,
            values["case_id"],
            values["reason_code"],
            values["legal_basis"],
            values["assessment_ref"],
            values["requested_by"],
            values["requested_at"],
            values["starts_at"],
            values["ends_at"],
            values["time_zone"],
        )
    except asyncpg.UniqueViolationError as e:
        raise Conflict("the case has a monitoring order requested or in force already") from e
    return order_id


async def decide_order(
    conn: asyncpg.Connection, order_id: int, status: str, decided_by: int, at: datetime, note: str | None
) -> bool:
    return rows_affected(await conn.execute(_DECIDE_ORDER, order_id, status, decided_by, at, note)) == 1


async def end_order(conn: asyncpg.Connection, order_id: int, at: datetime, reason: str) -> bool:
    return rows_affected(await conn.execute(_END_ORDER, order_id, at, reason)) == 1


async def extend_order(conn: asyncpg.Connection, order_id: int, previous: datetime, new: datetime) -> bool:
    return rows_affected(await conn.execute(_EXTEND_ORDER, order_id, previous, new)) == 1


async def assessment_used(conn: asyncpg.Connection, order_id: int, ref: str) -> bool:
    return bool(await conn.fetchval(_ASSESSMENT_USED, order_id, ref))


async def insert_renewal(
    conn: asyncpg.Connection,
    order_id: int,
    ref: str,
    previous: datetime,
    new: datetime,
    requested_by: int,
    at: datetime,
) -> int:
    try:
        renewal_id: int = await conn.fetchval(_INSERT_RENEWAL, order_id, ref, previous, new, requested_by, at)
    except asyncpg.UniqueViolationError as e:
        raise Conflict("the order has a renewal waiting for a decision already") from e
    return renewal_id


async def decide_renewal(
    conn: asyncpg.Connection,
    order_id: int,
    renewal_id: int,
    status: str,
    decided_by: int,
    at: datetime,
    note: str | None,
) -> bool:
    result = await conn.execute(_DECIDE_RENEWAL, renewal_id, order_id, status, decided_by, at, note)
    return rows_affected(result) == 1


async def device(conn: asyncpg.Connection, device_id: str) -> Device | None:
    row = await conn.fetchrow(_DEVICE, device_id)
    return None if row is None else msgspec.convert(dict(row), Device)


async def devices(conn: asyncpg.Connection, path: str, after: str | None, limit: int) -> list[Device]:
    return [msgspec.convert(dict(r), Device) for r in await conn.fetch(_DEVICES, path, after, limit)]


async def insert_device(
    conn: asyncpg.Connection,
    device_id: str,
    org_unit_id: int,
    sealed: bytes,
    interval_s: int,
    registered_by: int,
    at: datetime,
) -> None:
    try:
        await conn.execute(_INSERT_DEVICE, device_id, org_unit_id, sealed, interval_s, registered_by, at)
    except asyncpg.UniqueViolationError as e:
        raise Conflict(f"device {device_id} is registered already") from e


async def set_secret(conn: asyncpg.Connection, device_id: str, sealed: bytes) -> bool:
    return rows_affected(await conn.execute(_SET_SECRET, device_id, sealed)) == 1


async def device_of_order(conn: asyncpg.Connection, order_id: int) -> str | None:
    device_id: str | None = await conn.fetchval(_DEVICE_OF_ORDER, order_id)
    return device_id


async def assign(conn: asyncpg.Connection, device_id: str, order_id: int, by: int, at: datetime) -> None:
    try:
        await conn.execute(_ASSIGN, device_id, order_id, by, at)
    except asyncpg.UniqueViolationError as e:
        raise Conflict("the device is assigned to another order, or the order has a device already") from e


async def release(conn: asyncpg.Connection, order_id: int, by: int, at: datetime) -> str | None:
    device_id: str | None = await conn.fetchval(_RELEASE, order_id, by, at)
    return device_id


async def zone_order(conn: asyncpg.Connection, zone_id: int) -> int | None:
    order_id: int | None = await conn.fetchval(_ZONE_ORDER, zone_id)
    return order_id


async def insert_zone(
    conn: asyncpg.Connection,
    order_id: int,
    kind: str,
    label: str,
    shape: bytes,
    buffer_m: float,
    schedule: bytes | None,
    grace_minutes: int,
    by: int,
    at: datetime,
) -> int:
    zone_id: int = await conn.fetchval(
        _INSERT_ZONE,
        order_id,
        kind,
        label,
        shape.decode(),
        buffer_m,
        None if schedule is None else schedule.decode(),
        grace_minutes,
        by,
        at,
    )
    return zone_id


async def remove_zone(conn: asyncpg.Connection, zone_id: int, by: int, at: datetime) -> bool:
    return rows_affected(await conn.execute(_REMOVE_ZONE, zone_id, by, at)) == 1


# --- what tracking is told ------------------------------------------------------------------


class DeviceRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    secret_sealed: bytes
    reporting_interval_s: int
    retired_at: datetime | None
    order_id: int | None
    case_id: int | None
    org_unit_id: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    time_zone: str | None


async def absences(conn: asyncpg.Connection, order_id: int) -> list[Absence]:
    return [msgspec.convert(dict(r), Absence) for r in await conn.fetch(_ABSENCES, order_id)]


async def absence(conn: asyncpg.Connection, order_id: int, absence_id: int) -> Absence | None:
    row = await conn.fetchrow(_ABSENCE, absence_id, order_id)
    return None if row is None else msgspec.convert(dict(row), Absence)


async def insert_absence(
    conn: asyncpg.Connection,
    order_id: int,
    zone_ids: list[int],
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    by: int,
    at: datetime,
) -> int:
    absence_id: int = await conn.fetchval(
        _INSERT_ABSENCE, order_id, zone_ids, starts_at, ends_at, reason, by, at
    )
    await conn.execute(_COVER_RAISED, absence_id, order_id, starts_at, ends_at, zone_ids)
    return absence_id


async def revoke_absence(
    conn: asyncpg.Connection, order_id: int, absence_id: int, by: int, at: datetime
) -> bool:
    return rows_affected(await conn.execute(_REVOKE_ABSENCE, absence_id, order_id, by, at)) == 1


async def lock_device_config(conn: asyncpg.Connection, device_id: str) -> int:
    """Take the device's configuration lock for the transaction; returns the next version."""
    await conn.execute(_LOCK_DEVICE_CONFIG, device_id)
    version: int = await conn.fetchval(_NEXT_VERSION)
    return version


async def device_row(conn: asyncpg.Connection, device_id: str) -> DeviceRow | None:
    row = await conn.fetchrow(_DEVICE_CONFIG, device_id)
    return None if row is None else msgspec.convert(dict(row), DeviceRow)


async def queue(conn: asyncpg.Connection, device_id: str) -> datetime:
    queued_at: datetime = await conn.fetchval(_QUEUE, device_id)
    return queued_at


async def dequeue(conn: asyncpg.Connection, device_id: str, queued_until: datetime) -> None:
    await conn.execute(_DEQUEUE, device_id, queued_until)


async def queued(conn: asyncpg.Connection, older_than: datetime, limit: int) -> list[tuple[str, datetime]]:
    return [(r[0], r[1]) for r in await conn.fetch(_QUEUED, older_than, limit)]


async def queue_all(conn: asyncpg.Connection) -> int:
    return rows_affected(await conn.execute(_QUEUE_ALL))


# The index on (order_id, fixed_at) and the day partitions keep this to the window asked for;
# fixes without a position are left out (they draw nothing).
_RECENT_TRACK = """
SELECT fixed_at, longitude, latitude, accuracy_m FROM pings
 WHERE order_id = $1 AND fixed_at >= $2 AND longitude IS NOT NULL
 ORDER BY fixed_at
 LIMIT $3
"""


async def recent_track(
    conn: asyncpg.Connection, order_id: int, since: datetime, limit: int
) -> list[tuple[datetime, float, float, float | None]]:
    return [
        (r["fixed_at"], r["longitude"], r["latitude"], r["accuracy_m"])
        for r in await conn.fetch(_RECENT_TRACK, order_id, since, limit)
    ]
