"""All SQL of supervision: the plans, contacts, tasks and the due-task engine's statements.

The engine's statements are set-based and idempotent: each touches every case of the
transaction's scope at once (or one case, when $2 names it), and the unique index on open
tasks makes a second run, or two runs at once, create nothing twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import msgspec

from casemgr.cases.schemas import Program
from casemgr.db import rows_affected
from casemgr.supervision.schemas import Contact, ContactIn, PlanRule, Task, TaskKind

_PLAN = "SELECT program::text AS program, band, interval_days FROM contact_plan ORDER BY program, band"
_SET_PLAN = """
INSERT INTO contact_plan (program, band, interval_days) VALUES ($1::program, $2, $3)
ON CONFLICT (program, band) DO UPDATE SET interval_days = EXCLUDED.interval_days
"""
_INSERT_CONTACT = """
INSERT INTO case_contacts (case_id, kind, outcome, occurred_at, note, recorded_by)
VALUES ($1, $2::contact_kind, $3::contact_outcome, $4, $5, $6)
RETURNING id, case_id, kind::text AS kind, outcome::text AS outcome, occurred_at, note, recorded_by,
          recorded_at
"""
_CONTACTS = """
SELECT id, case_id, kind::text AS kind, outcome::text AS outcome, occurred_at, note, recorded_by,
       recorded_at
  FROM case_contacts WHERE case_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2
"""
_COMPLETE_OPEN = """
UPDATE tasks SET status = 'done', completed_at = $3, completed_by = $4, note = $5
 WHERE case_id = $1 AND kind = $2::task_kind AND status = 'open'
"""
_TASK_COLUMNS = """
t.id, t.case_id, t.kind::text AS kind, t.status::text AS status, t.due_at, t.overdue_at,
t.escalated_at, t.escalated_to, t.completed_at, c.officer_id, c.org_unit_id, c.program::text AS program
"""
_ADD_TASK = """
INSERT INTO tasks (case_id, kind, due_at) VALUES ($1, $2::task_kind, $3)
ON CONFLICT (case_id, kind) WHERE status = 'open' DO NOTHING
"""
_TASK_CASE = "SELECT task_case_id($1)"
_TASK = f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN cases c ON c.id = t.case_id WHERE t.id = $1"
_COMPLETE_TASK = """
UPDATE tasks SET status = 'done', completed_at = $2, completed_by = $3, note = $4
 WHERE id = $1 AND status = 'open'
"""
# The application's scope filter first; the policies filter again.
_LIST_TASKS = f"""
SELECT {_TASK_COLUMNS}
  FROM tasks t JOIN cases c ON c.id = t.case_id JOIN org_units o ON o.id = c.org_unit_id
 WHERE o.path <@ $1::ltree
   AND CASE $2::text
         WHEN 'open' THEN t.status = 'open'
         WHEN 'overdue' THEN t.status = 'open' AND t.overdue_at IS NOT NULL
         WHEN 'escalated' THEN t.status = 'open' AND t.escalated_at IS NOT NULL
         ELSE t.status = 'done'
       END
   AND ($3::bigint IS NULL OR c.officer_id = $3)
   AND ($4::bigint IS NULL OR t.escalated_to = $4)
   AND ($5::program IS NULL OR c.program = $5::program)
   AND (NOT $6::boolean OR c.shared_with_police)
   AND ($7::bigint IS NULL OR t.id > $7)
   AND ($9::task_kind IS NULL OR t.kind = $9::task_kind)
   AND ($10::bigint IS NULL OR t.case_id = $10)
 ORDER BY t.id
 LIMIT $8
"""

# --- the engine ----------------------------------------------------------------------------

# The band of a case in the contact plan: the risk grade of a mental-illness case when one
# is recorded, else its supervision level.
_BAND = """
CASE WHEN c.program = 'severe_mental_illness' AND c.details ? 'risk_grade'
     THEN 'risk_' || (c.details ->> 'risk_grade')
     ELSE c.supervision_level::text END
"""
_CREATE_CONTACT_TASKS = f"""
INSERT INTO tasks (case_id, kind, due_at)
SELECT c.id, 'contact_due',
       coalesce(last.occurred_at, c.activated_at, $1) + make_interval(days => plan.interval_days)
  FROM cases c
  JOIN contact_plan plan ON plan.program = c.program AND plan.band = {_BAND}
  LEFT JOIN LATERAL (
      SELECT max(cc.occurred_at) AS occurred_at FROM case_contacts cc
       WHERE cc.case_id = c.id AND cc.outcome IN ('attended', 'complied')) last ON true
 WHERE c.status = 'active'
   AND ($2::bigint IS NULL OR c.id = $2)
   AND NOT EXISTS (SELECT 1 FROM tasks t
                    WHERE t.case_id = c.id AND t.kind = 'contact_due' AND t.status = 'open')
ON CONFLICT (case_id, kind) WHERE status = 'open' DO NOTHING
"""
_CREATE_ASSESSMENT_TASKS = """
INSERT INTO tasks (case_id, kind, due_at)
SELECT c.id, 'assessment_due',
       coalesce(last.completed_at, c.activated_at, $1) + make_interval(days => plan.interval_days)
  FROM cases c
  JOIN assessment_plan plan ON plan.program = c.program
  LEFT JOIN LATERAL (
      SELECT max(t.completed_at) AS completed_at FROM tasks t
       WHERE t.case_id = c.id AND t.kind = 'assessment_due' AND t.status = 'done') last ON true
 WHERE c.status = 'active'
   AND ($2::bigint IS NULL OR c.id = $2)
   AND NOT EXISTS (SELECT 1 FROM tasks t
                    WHERE t.case_id = c.id AND t.kind = 'assessment_due' AND t.status = 'open')
ON CONFLICT (case_id, kind) WHERE status = 'open' DO NOTHING
"""
# A community-corrections term ending: review the case two weeks before it does.
_CREATE_REVIEW_TASKS = """
INSERT INTO tasks (case_id, kind, due_at)
SELECT c.id, 'review_due', ((c.details ->> 'supervision_end')::date - 14)::timestamptz
  FROM cases c
 WHERE c.status = 'active' AND c.program = 'community_corrections'
   AND c.details ->> 'supervision_end' IS NOT NULL
   AND ($1::bigint IS NULL OR c.id = $1)
   AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.case_id = c.id AND t.kind = 'review_due')
ON CONFLICT (case_id, kind) WHERE status = 'open' DO NOTHING
"""
# Plans that no longer apply: the case was suspended or closed.
_CANCEL_STALE = """
UPDATE tasks t SET status = 'cancelled', completed_at = $1
  FROM cases c
 WHERE c.id = t.case_id AND t.status = 'open' AND c.status <> 'active'
   AND t.kind IN ('contact_due', 'assessment_due', 'review_due')
   AND ($2::bigint IS NULL OR c.id = $2)
"""
_MARK_OVERDUE = """
UPDATE tasks SET overdue_at = $1
 WHERE status = 'open' AND due_at < $1 AND overdue_at IS NULL
   AND EXISTS (SELECT 1 FROM cases c WHERE c.id = tasks.case_id)
"""
# Overdue for longer than the grace: to the nearest supervisor above the case's unit.
_ESCALATE = """
UPDATE tasks t SET escalated_at = $1, escalated_to = sup.id
  FROM cases c
  JOIN org_units o ON o.id = c.org_unit_id
  LEFT JOIN LATERAL (
      SELECT a.id FROM accounts a JOIN org_units ao ON ao.id = a.org_unit_id
       WHERE a.role = 'supervisor' AND a.disabled_at IS NULL AND ao.path @> o.path
       ORDER BY nlevel(ao.path) DESC, a.id
       LIMIT 1) sup ON true
 WHERE t.case_id = c.id AND t.status = 'open' AND t.escalated_at IS NULL
   AND t.overdue_at <= $1::timestamptz - $2::interval
"""
_ROOTS = "SELECT id, path::text AS path FROM org_units WHERE parent_id IS NULL ORDER BY id"
# One engine per city at a time, whichever worker gets there first.
_TRY_LOCK = "SELECT pg_try_advisory_xact_lock(7262002, $1::int)"


async def plan(conn: asyncpg.Connection) -> list[PlanRule]:
    return [msgspec.convert(dict(r), PlanRule) for r in await conn.fetch(_PLAN)]


async def set_plan_rule(conn: asyncpg.Connection, program: Program, band: str, interval_days: int) -> None:
    await conn.execute(_SET_PLAN, program.value, band, interval_days)


async def insert_contact(
    conn: asyncpg.Connection, case_id: int, contact: ContactIn, *, recorded_by: int
) -> Contact:
    record = await conn.fetchrow(
        _INSERT_CONTACT,
        case_id,
        contact.kind.value,
        contact.outcome.value,
        contact.occurred_at,
        contact.note,
        recorded_by,
    )
    return msgspec.convert(dict(record), Contact)  # type: ignore[arg-type]


async def contacts(conn: asyncpg.Connection, case_id: int, limit: int) -> list[Contact]:
    return [msgspec.convert(dict(r), Contact) for r in await conn.fetch(_CONTACTS, case_id, limit)]


async def complete_open(
    conn: asyncpg.Connection, case_id: int, kind: TaskKind, *, at: datetime, by: int, note: str | None
) -> int:
    return rows_affected(await conn.execute(_COMPLETE_OPEN, case_id, kind.value, at, by, note))


async def add_task(conn: asyncpg.Connection, case_id: int, kind: TaskKind, due_at: datetime) -> None:
    await conn.execute(_ADD_TASK, case_id, kind.value, due_at)


async def task_case_id(conn: asyncpg.Connection, task_id: int) -> int | None:
    """The case of a task, whether or not the caller may see it."""
    case_id: int | None = await conn.fetchval(_TASK_CASE, task_id)
    return case_id


async def task(conn: asyncpg.Connection, task_id: int) -> Task | None:
    record = await conn.fetchrow(_TASK, task_id)
    return None if record is None else msgspec.convert(dict(record), Task)


async def complete_task(conn: asyncpg.Connection, task_id: int, *, at: datetime, by: int, note: str) -> bool:
    return rows_affected(await conn.execute(_COMPLETE_TASK, task_id, at, by, note)) == 1


async def list_tasks(
    conn: asyncpg.Connection,
    *,
    path: str,
    state: str,
    officer_id: int | None,
    escalated_to: int | None,
    program: Program | None,
    shared_only: bool,
    after: int | None,
    limit: int,
    kind: str | None = None,
    case_id: int | None = None,
) -> list[Task]:
    records = await conn.fetch(
        _LIST_TASKS,
        path,
        state,
        officer_id,
        escalated_to,
        program.value if program else None,
        shared_only,
        after,
        limit,
        kind,
        case_id,
    )
    return [msgspec.convert(dict(r), Task) for r in records]


async def roots(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    return [(r["id"], r["path"]) for r in await conn.fetch(_ROOTS)]


async def try_engine_lock(conn: asyncpg.Connection, root_id: int) -> bool:
    locked: bool = await conn.fetchval(_TRY_LOCK, root_id)
    return locked


async def create_due_tasks(conn: asyncpg.Connection, now: datetime, case_id: int | None = None) -> int:
    created = rows_affected(await conn.execute(_CREATE_CONTACT_TASKS, now, case_id))
    created += rows_affected(await conn.execute(_CREATE_ASSESSMENT_TASKS, now, case_id))
    created += rows_affected(await conn.execute(_CREATE_REVIEW_TASKS, case_id))
    return created


async def cancel_stale(conn: asyncpg.Connection, now: datetime, case_id: int | None = None) -> int:
    return rows_affected(await conn.execute(_CANCEL_STALE, now, case_id))


async def mark_overdue(conn: asyncpg.Connection, now: datetime) -> int:
    return rows_affected(await conn.execute(_MARK_OVERDUE, now))


async def escalate(conn: asyncpg.Connection, now: datetime, after: timedelta) -> int:
    return rows_affected(await conn.execute(_ESCALATE, now, after))
