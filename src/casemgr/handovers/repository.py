"""All SQL of handovers and of the alerts the engine raises about them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from casemgr.cases.schemas import Program
from casemgr.db import rows_affected
from casemgr.errors import Conflict
from casemgr.handovers.schemas import Handover, IntakeDeadline

_COLUMNS = """
h.id, h.source::text AS source, h.source_name, h.source_org_unit_id, h.target_org_unit_id,
h.program::text AS program, h.case_id, h.intake_case_id, h.person::text AS person, h.anchor_date,
h.deadline, h.status::text AS status, h.note, h.decided_by, h.decided_at, h.decision_note,
h.created_by, h.created_at
"""
_LOCATE = "SELECT target_path::text, source_path::text, status::text FROM handover_locator($1)"
_GET = f"SELECT {_COLUMNS} FROM handovers h WHERE h.id = $1"
_STORED_DETAIL = "SELECT detail::text AS detail, sealed_detail FROM handovers WHERE id = $1"
_INSERT = """
INSERT INTO handovers (source, source_name, source_org_unit_id, target_org_unit_id, program, case_id,
                       person, detail, anchor_date, deadline, note, created_by)
VALUES ($1::handover_source, $2, $3, $4, $5::program, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12)
RETURNING id
"""
_SET_SEALED = "UPDATE handovers SET sealed_detail = $2 WHERE id = $1"
_DECIDE = """
UPDATE handovers
   SET status = $2::handover_status, decided_by = $3, decided_at = $4, decision_note = $5,
       intake_case_id = $6
 WHERE id = $1 AND status = 'pending'
"""
_MOVE_CASE = "SELECT move_transferred_case($1, $2)"
# Incoming: sent to the caller's scope; outgoing: sent from it (transfers).
_LIST = f"""
SELECT {_COLUMNS}
  FROM handovers h
 WHERE CASE WHEN $2 THEN h.target_org_unit_id IN (SELECT id FROM org_units WHERE path <@ $1::ltree)
            ELSE h.source_org_unit_id IN (SELECT id FROM org_units WHERE path <@ $1::ltree) END
   AND ($3::handover_status IS NULL OR h.status = $3::handover_status)
   AND ($4::bigint IS NULL OR h.id > $4)
 ORDER BY h.id
 LIMIT $5
"""
_DEADLINES = "SELECT program::text AS program, anchor, days_after FROM intake_deadlines ORDER BY program"
_DEADLINE_OF = "SELECT days_after FROM intake_deadlines WHERE program = $1::program"

# --- the engine's alerts --------------------------------------------------------------------
_ALERT_LATE_HANDOVERS = """
INSERT INTO alerts (kind, severity, org_unit_id, handover_id, raised_at, details, dedupe_key)
SELECT 'missed_intake', 'serious', h.target_org_unit_id, h.id, $1,
       jsonb_build_object('deadline', h.deadline, 'program', h.program), 'missed_intake:handover:' || h.id
  FROM handovers h
 WHERE h.status = 'pending' AND h.deadline < $1
ON CONFLICT (dedupe_key) WHERE status <> 'resolved' DO NOTHING
"""
_ALERT_LATE_INTAKES = """
INSERT INTO alerts (kind, severity, org_unit_id, case_id, task_id, raised_at, details, dedupe_key)
SELECT 'missed_intake', 'serious', c.org_unit_id, c.id, t.id, $1,
       jsonb_build_object('deadline', t.due_at, 'program', c.program), 'missed_intake:case:' || c.id
  FROM tasks t JOIN cases c ON c.id = t.case_id
 WHERE t.kind = 'intake_due' AND t.status = 'open' AND t.due_at < $1
ON CONFLICT (dedupe_key) WHERE status <> 'resolved' DO NOTHING
"""
_ALERT_OVERDUE_TASKS = """
INSERT INTO alerts (kind, severity, org_unit_id, case_id, task_id, raised_at, details, dedupe_key)
SELECT CASE WHEN t.kind = 'contact_due' THEN 'contact_overdue' ELSE 'task_overdue' END, 'warning',
       c.org_unit_id, c.id, t.id, $1, jsonb_build_object('due_at', t.due_at, 'task_kind', t.kind),
       'task_overdue:' || t.id
  FROM tasks t JOIN cases c ON c.id = t.case_id
 WHERE t.status = 'open' AND t.overdue_at IS NOT NULL AND t.kind <> 'intake_due'
ON CONFLICT (dedupe_key) WHERE status <> 'resolved' DO NOTHING
"""


def _handover(record: asyncpg.Record) -> Handover:
    values = dict(record)
    values["person"] = None if values["person"] is None else msgspec.json.decode(values["person"])
    return msgspec.convert(values, Handover)


async def locate(conn: asyncpg.Connection, handover_id: int) -> tuple[str, str | None, str] | None:
    record = await conn.fetchrow(_LOCATE, handover_id)
    return None if record is None else (record[0], record[1], record[2])


async def get(conn: asyncpg.Connection, handover_id: int) -> Handover | None:
    record = await conn.fetchrow(_GET, handover_id)
    return None if record is None else _handover(record)


async def stored_detail(
    conn: asyncpg.Connection, handover_id: int
) -> tuple[dict[str, Any] | None, bytes | None]:
    record = await conn.fetchrow(_STORED_DETAIL, handover_id)
    if record is None or record["detail"] is None:
        return None, None
    return msgspec.json.decode(record["detail"]), record["sealed_detail"]


async def insert(
    conn: asyncpg.Connection,
    *,
    source: str,
    source_name: str | None,
    source_org_unit_id: int | None,
    target_org_unit_id: int,
    program: Program,
    case_id: int | None,
    person: dict[str, Any] | None,
    detail: dict[str, Any] | None,
    anchor_date: Any,
    deadline: datetime,
    note: str | None,
    created_by: int,
) -> int:
    encode = msgspec.json.encode
    try:
        handover_id: int = await conn.fetchval(
            _INSERT,
            source,
            source_name,
            source_org_unit_id,
            target_org_unit_id,
            program.value,
            case_id,
            None if person is None else encode(person).decode(),
            None if detail is None else encode(detail).decode(),
            anchor_date,
            deadline,
            note,
            created_by,
        )
    except asyncpg.UniqueViolationError as e:
        raise Conflict("this case has a transfer pending already") from e
    return handover_id


async def set_sealed(conn: asyncpg.Connection, handover_id: int, sealed: bytes | None) -> None:
    await conn.execute(_SET_SEALED, handover_id, sealed)


async def decide(
    conn: asyncpg.Connection,
    handover_id: int,
    *,
    status: str,
    by: int,
    at: datetime,
    note: str | None,
    intake_case_id: int | None = None,
) -> bool:
    return rows_affected(await conn.execute(_DECIDE, handover_id, status, by, at, note, intake_case_id)) == 1


async def move_case(conn: asyncpg.Connection, handover_id: int, officer_id: int) -> int | None:
    moved: int | None = await conn.fetchval(_MOVE_CASE, handover_id, officer_id)
    return moved


async def list_handovers(
    conn: asyncpg.Connection, *, path: str, incoming: bool, status: str | None, after: int | None, limit: int
) -> list[Handover]:
    return [_handover(r) for r in await conn.fetch(_LIST, path, incoming, status, after, limit)]


async def deadlines(conn: asyncpg.Connection) -> list[IntakeDeadline]:
    return [msgspec.convert(dict(r), IntakeDeadline) for r in await conn.fetch(_DEADLINES)]


async def days_after(conn: asyncpg.Connection, program: Program) -> int:
    days: int = await conn.fetchval(_DEADLINE_OF, program.value)
    return days


async def raise_alerts(conn: asyncpg.Connection, now: datetime) -> int:
    raised = rows_affected(await conn.execute(_ALERT_LATE_HANDOVERS, now))
    raised += rows_affected(await conn.execute(_ALERT_LATE_INTAKES, now))
    raised += rows_affected(await conn.execute(_ALERT_OVERDUE_TASKS, now))
    return raised
