"""All SQL of enforcement."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from casemgr.enforcement.schemas import Enforcement

_COLUMNS = """
e.id, e.case_id, e.alert_id, e.kind::text AS kind, e.status::text AS status, e.note, e.created_by,
e.created_at,
e.office_signed_by, e.office_signed_at, e.district_signed_by, e.district_signed_at, e.rejected_by,
e.rejected_at, e.rejection_note
"""
_GET = f"SELECT {_COLUMNS} FROM enforcement_actions e WHERE e.id = $1"
_OF_CASE = f"SELECT {_COLUMNS} FROM enforcement_actions e WHERE e.case_id = $1 ORDER BY e.id"
_CASE_OF = "SELECT enforcement_case($1)"
_INSERT = """
INSERT INTO enforcement_actions (case_id, alert_id, kind, status, note, created_by, created_at)
VALUES ($1, $2, $3::enforcement_kind, $4::enforcement_status, $5, $6, $7)
RETURNING id
"""
_CONFIRMED_ALERT = """
SELECT EXISTS (SELECT 1 FROM alerts WHERE id = $1 AND case_id = $2 AND outcome = 'confirmed_violation')
"""
_OFFICE_SIGN = """
UPDATE enforcement_actions SET status = 'office_signed', office_signed_by = $2, office_signed_at = $3
 WHERE id = $1 AND status = 'proposed'
RETURNING id
"""
_DISTRICT_SIGN = """
UPDATE enforcement_actions SET status = 'approved', district_signed_by = $2, district_signed_at = $3
 WHERE id = $1 AND status = 'office_signed'
RETURNING id
"""
_REJECT = """
UPDATE enforcement_actions SET status = 'rejected', rejected_by = $2, rejected_at = $3, rejection_note = $4
 WHERE id = $1 AND status IN ('proposed', 'office_signed')
RETURNING id
"""


async def get(conn: asyncpg.Connection, enforcement_id: int) -> Enforcement | None:
    row = await conn.fetchrow(_GET, enforcement_id)
    return None if row is None else msgspec.convert(dict(row), Enforcement)


async def of_case(conn: asyncpg.Connection, case_id: int) -> list[Enforcement]:
    return [msgspec.convert(dict(r), Enforcement) for r in await conn.fetch(_OF_CASE, case_id)]


async def case_of(conn: asyncpg.Connection, enforcement_id: int) -> int | None:
    case_id: int | None = await conn.fetchval(_CASE_OF, enforcement_id)
    return case_id


async def confirmed_alert(conn: asyncpg.Connection, alert_id: int, case_id: int) -> bool:
    return bool(await conn.fetchval(_CONFIRMED_ALERT, alert_id, case_id))


async def insert(
    conn: asyncpg.Connection,
    case_id: int,
    alert_id: int | None,
    kind: str,
    status: str,
    note: str,
    by: int,
    at: datetime,
) -> int:
    enforcement_id: int = await conn.fetchval(_INSERT, case_id, alert_id, kind, status, note, by, at)
    return enforcement_id


async def office_sign(conn: asyncpg.Connection, enforcement_id: int, by: int, at: datetime) -> bool:
    return await conn.fetchval(_OFFICE_SIGN, enforcement_id, by, at) is not None


async def district_sign(conn: asyncpg.Connection, enforcement_id: int, by: int, at: datetime) -> bool:
    return await conn.fetchval(_DISTRICT_SIGN, enforcement_id, by, at) is not None


async def reject(conn: asyncpg.Connection, enforcement_id: int, by: int, at: datetime, note: str) -> bool:
    return await conn.fetchval(_REJECT, enforcement_id, by, at, note) is not None
