"""All SQL of cases and their events. Reads and writes pass the policies of migrations 0005
and 0007."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from casemgr.cases.schemas import (
    CaseEvent,
    CaseLocation,
    CaseStatus,
    CaseSummary,
    ClosureReason,
    Program,
    SupervisionLevel,
)
from casemgr.errors import Conflict

_LOCATE = """
SELECT org_unit_id, org_path::text AS org_path, officer_id, program::text AS program,
       shared_with_police
  FROM case_locator($1)
"""
_INSERT_CASE = """
INSERT INTO cases (person_id, program, status, org_unit_id, officer_id, supervision_level,
                   activated_at)
VALUES ($1, $2::program, $3::case_status, $4, $5, $6::supervision_level,
        CASE WHEN $3::case_status = 'active' THEN now() END)
RETURNING id
"""
_SET_DETAILS = "UPDATE cases SET details = $2::jsonb, sealed_details = $3, updated_at = now() WHERE id = $1"
_STORED_DETAILS = "SELECT details::text AS details, sealed_details FROM cases WHERE id = $1"
_GET = """
SELECT c.id, c.program::text AS program, c.status::text AS status,
       c.supervision_level::text AS supervision_level, c.org_unit_id, c.officer_id,
       c.shared_with_police, c.closure_reason::text AS closure_reason, c.activated_at, c.closed_at,
       c.created_at, c.details::text AS details, c.sealed_details,
       p.id AS person_id, p.full_name, p.sex, p.birth_date, p.id_number
  FROM cases c JOIN persons p ON p.id = c.person_id
 WHERE c.id = $1
"""
# The explicit scope filter is the application's own; the policies filter again.
# The application's scope filter first (the policies filter again). The page of case ids is
# found before any person is joined, so a large office costs a page, not its whole caseload.
_LIST = """
WITH units AS MATERIALIZED (SELECT id FROM org_units WHERE path <@ $1::ltree),
     page AS MATERIALIZED (
         SELECT c.id, c.program, c.status, c.supervision_level, c.org_unit_id, c.officer_id, c.person_id
           FROM cases c
          WHERE c.org_unit_id IN (SELECT id FROM units)
            AND ($2::program IS NULL OR c.program = $2::program)
            AND ($3::bigint IS NULL OR c.officer_id = $3)
            AND ($4::bigint IS NULL OR c.id > $4)
            AND (NOT $6::boolean OR c.shared_with_police)
            AND ($7::case_status IS NULL OR c.status = $7::case_status)
            AND ($8::supervision_level IS NULL OR c.supervision_level = $8::supervision_level)
            AND (NOT $9::boolean
                 OR EXISTS (SELECT 1 FROM tasks t
                             WHERE t.case_id = c.id AND t.status = 'open' AND t.overdue_at IS NOT NULL))
            AND ($10::bigint[] IS NULL OR c.person_id = ANY($10::bigint[]))
          ORDER BY c.id
          LIMIT $5)
SELECT page.id, page.program::text AS program, page.status::text AS status,
       page.supervision_level::text AS supervision_level, page.org_unit_id, page.officer_id, page.person_id,
       p.full_name
  FROM page JOIN persons p ON p.id = page.person_id
 ORDER BY page.id
"""
_UPDATE = """
UPDATE cases
   SET officer_id = coalesce($2, officer_id),
       shared_with_police = coalesce($3, shared_with_police),
       supervision_level = coalesce($4::supervision_level, supervision_level),
       updated_at = now()
 WHERE id = $1
"""
_LOCK_STATUS = "SELECT status::text FROM cases WHERE id = $1 FOR UPDATE"
_TRANSITION = """
UPDATE cases
   SET status = $2::case_status,
       closure_reason = $3::closure_reason,
       activated_at = CASE WHEN $2::case_status = 'active' THEN coalesce(activated_at, now())
                           ELSE activated_at END,
       closed_at = CASE WHEN $2::case_status = 'closed' THEN now() END,
       updated_at = now()
 WHERE id = $1
"""
_INSERT_EVENT = """
INSERT INTO case_events (case_id, actor_id, kind, from_status, to_status, note)
VALUES ($1, $2, $3, $4::case_status, $5::case_status, $6)
"""
_EVENTS = """
SELECT id, at, actor_id, kind, from_status::text AS from_status, to_status::text AS to_status, note
  FROM case_events WHERE case_id = $1 ORDER BY id
"""
_OFFICER_PATH = """
SELECT o.path::text FROM accounts a JOIN org_units o ON o.id = a.org_unit_id
 WHERE a.id = $1 AND a.role = 'officer' AND a.disabled_at IS NULL
"""


class StoredCase(msgspec.Struct, frozen=True, kw_only=True):
    """A case row as stored: the detail still in its public and sealed parts."""

    id: int
    program: Program
    status: CaseStatus
    supervision_level: SupervisionLevel
    org_unit_id: int
    officer_id: int
    shared_with_police: bool
    closure_reason: ClosureReason | None
    activated_at: Any
    closed_at: Any
    created_at: Any
    details: dict[str, Any] | None
    sealed_details: bytes | None
    person: dict[str, Any]


async def locate(conn: asyncpg.Connection, case_id: int) -> CaseLocation | None:
    record = await conn.fetchrow(_LOCATE, case_id)
    return None if record is None else msgspec.convert(dict(record), CaseLocation)


async def insert_case(
    conn: asyncpg.Connection,
    *,
    person_id: int,
    program: Program,
    status: CaseStatus,
    org_unit_id: int,
    officer_id: int,
    level: SupervisionLevel,
) -> int:
    try:
        case_id: int = await conn.fetchval(
            _INSERT_CASE, person_id, program.value, status.value, org_unit_id, officer_id, level.value
        )
    except asyncpg.UniqueViolationError as e:
        raise Conflict(f"the person already has an open {program} case") from e
    return case_id


async def set_details(
    conn: asyncpg.Connection, case_id: int, public: dict[str, Any] | None, sealed: bytes | None
) -> None:
    await conn.execute(
        _SET_DETAILS, case_id, None if public is None else msgspec.json.encode(public).decode(), sealed
    )


async def stored_details(
    conn: asyncpg.Connection, case_id: int
) -> tuple[dict[str, Any] | None, bytes | None]:
    record = await conn.fetchrow(_STORED_DETAILS, case_id)
    if record is None:
        return None, None
    public = None if record["details"] is None else msgspec.json.decode(record["details"])
    return public, record["sealed_details"]


async def get(conn: asyncpg.Connection, case_id: int) -> StoredCase | None:
    record = await conn.fetchrow(_GET, case_id)
    if record is None:
        return None
    values = dict(record)
    person = {k: values.pop(k) for k in ("person_id", "full_name", "sex", "birth_date", "id_number")}
    person["id"] = person.pop("person_id")
    values["details"] = None if values["details"] is None else msgspec.json.decode(values["details"])
    return msgspec.convert({**values, "person": person}, StoredCase)


async def list_under(
    conn: asyncpg.Connection,
    *,
    path: str,
    program: Program | None,
    officer_id: int | None,
    after: int | None,
    limit: int,
    shared_with_police_only: bool = False,
    status: CaseStatus | None = None,
    level: SupervisionLevel | None = None,
    overdue_only: bool = False,
    person_ids: list[int] | None = None,
) -> list[CaseSummary]:
    records = await conn.fetch(
        _LIST,
        path,
        program.value if program else None,
        officer_id,
        after,
        limit,
        shared_with_police_only,
        status.value if status else None,
        level.value if level else None,
        overdue_only,
        person_ids,
    )
    return [msgspec.convert(dict(r), CaseSummary) for r in records]


async def update(
    conn: asyncpg.Connection,
    case_id: int,
    *,
    officer_id: int | None,
    shared_with_police: bool | None,
    level: SupervisionLevel | None,
) -> None:
    await conn.execute(_UPDATE, case_id, officer_id, shared_with_police, level.value if level else None)


async def lock_status(conn: asyncpg.Connection, case_id: int) -> CaseStatus | None:
    """The case's status, with its row locked until the transaction ends."""
    status: str | None = await conn.fetchval(_LOCK_STATUS, case_id)
    return None if status is None else CaseStatus(status)


async def transition(
    conn: asyncpg.Connection, case_id: int, to: CaseStatus, reason: ClosureReason | None
) -> None:
    try:
        await conn.execute(_TRANSITION, case_id, to.value, reason.value if reason else None)
    except asyncpg.UniqueViolationError as e:
        raise Conflict("the person has another open case of this program") from e


async def add_event(
    conn: asyncpg.Connection,
    case_id: int,
    *,
    actor_id: int,
    kind: str,
    from_status: CaseStatus | None = None,
    to_status: CaseStatus | None = None,
    note: str | None = None,
) -> None:
    await conn.execute(
        _INSERT_EVENT,
        case_id,
        actor_id,
        kind,
        from_status.value if from_status else None,
        to_status.value if to_status else None,
        note,
    )


async def events(conn: asyncpg.Connection, case_id: int) -> list[CaseEvent]:
    return [msgspec.convert(dict(r), CaseEvent) for r in await conn.fetch(_EVENTS, case_id)]


async def officer_path(conn: asyncpg.Connection, account_id: int) -> str | None:
    """The org path of an active officer account visible to the caller, else None."""
    path: str | None = await conn.fetchval(_OFFICER_PATH, account_id)
    return path
