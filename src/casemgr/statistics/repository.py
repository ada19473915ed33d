"""All SQL of the statistics. Every query groups by (unit, program), where the units are the
unit asked for and its children, each counting everything in its subtree; each applies the
caller's role rules ($2 program, $3 shared with police) and runs under the row policies."""

from __future__ import annotations

from datetime import datetime

import asyncpg

_GROUPS = """
WITH g AS (SELECT id, name, path FROM org_units WHERE id = $1 OR parent_id = $1),
     scoped AS (
         SELECT g.id AS group_id, c.*
           FROM g
           JOIN org_units o ON o.path <@ g.path
           JOIN cases c ON c.org_unit_id = o.id
          WHERE ($2::program IS NULL OR c.program = $2::program)
            AND (NOT $3::boolean OR c.shared_with_police))
"""
_UNITS = "SELECT id, name FROM org_units WHERE id = $1 OR parent_id = $1 ORDER BY id <> $1, name"
_CASE_COUNTS = (
    _GROUPS
    + """
SELECT group_id, program::text AS program, status::text AS status, supervision_level::text AS level,
       count(*) AS n
  FROM scoped GROUP BY group_id, program, status, supervision_level
"""
)
_INTAKES = (
    _GROUPS
    + """
SELECT s.group_id, s.program::text AS program,
       count(*) FILTER (WHERE t.status = 'done' AND t.completed_at <= t.due_at) AS on_time,
       count(*) FILTER (WHERE t.status = 'done' OR (t.status = 'open' AND t.due_at < $4)) AS counted
  FROM scoped s JOIN tasks t ON t.case_id = s.id AND t.kind = 'intake_due'
 GROUP BY s.group_id, s.program
"""
)
_CONTACTS = (
    _GROUPS
    + """
SELECT s.group_id, s.program::text AS program,
       count(*) FILTER (WHERE cc.outcome IN ('attended', 'complied')) AS achieved, count(*) AS counted
  FROM scoped s
  JOIN case_contacts cc
    ON cc.case_id = s.id AND cc.occurred_at >= $4::timestamptz - make_interval(days => $5::int)
 GROUP BY s.group_id, s.program
"""
)
_OVERDUE = (
    _GROUPS
    + """
SELECT s.group_id, s.program::text AS program, count(*) AS n
  FROM scoped s JOIN tasks t ON t.case_id = s.id AND t.status = 'open' AND t.overdue_at IS NOT NULL
 GROUP BY s.group_id, s.program
"""
)
_ALERTS = (
    _GROUPS
    + """
SELECT group_id, program, count(*) AS n FROM (
    SELECT s.group_id, s.program::text AS program
      FROM scoped s JOIN alerts a ON a.case_id = s.id AND a.status <> 'resolved'
    UNION ALL
    -- Alerts on a referral that has no case yet (a missed intake): the offices' own, by the
    -- program the referral names; counted for those who take people on ($4).
    SELECT g.id, a.details ->> 'program'
      FROM g JOIN org_units o ON o.path <@ g.path
      JOIN alerts a ON a.org_unit_id = o.id AND a.case_id IS NULL AND a.status <> 'resolved'
     WHERE $4::boolean AND ($2::program IS NULL OR a.details ->> 'program' = $2::text)
) AS open_alerts
GROUP BY group_id, program
"""
)

Key = tuple[int, str]


async def units(conn: asyncpg.Connection, unit_id: int) -> list[tuple[int, str]]:
    return [(r["id"], r["name"]) for r in await conn.fetch(_UNITS, unit_id)]


async def case_counts(
    conn: asyncpg.Connection, unit_id: int, program: str | None, shared_only: bool
) -> list[asyncpg.Record]:
    return await conn.fetch(_CASE_COUNTS, unit_id, program, shared_only)


async def intakes(
    conn: asyncpg.Connection, unit_id: int, program: str | None, shared_only: bool, now: datetime
) -> dict[Key, tuple[int, int]]:
    rows = await conn.fetch(_INTAKES, unit_id, program, shared_only, now)
    return {(r["group_id"], r["program"]): (r["on_time"], r["counted"]) for r in rows}


async def contacts(
    conn: asyncpg.Connection, unit_id: int, program: str | None, shared_only: bool, now: datetime, days: int
) -> dict[Key, tuple[int, int]]:
    rows = await conn.fetch(_CONTACTS, unit_id, program, shared_only, now, days)
    return {(r["group_id"], r["program"]): (r["achieved"], r["counted"]) for r in rows}


async def overdue_tasks(
    conn: asyncpg.Connection, unit_id: int, program: str | None, shared_only: bool
) -> dict[Key, int]:
    rows = await conn.fetch(_OVERDUE, unit_id, program, shared_only)
    return {(r["group_id"], r["program"]): r["n"] for r in rows}


async def open_alerts(
    conn: asyncpg.Connection, unit_id: int, program: str | None, shared_only: bool, *, unattached: bool
) -> dict[Key, int]:
    rows = await conn.fetch(_ALERTS, unit_id, program, shared_only, unattached)
    return {(r["group_id"], r["program"]): r["n"] for r in rows}
