"""All SQL of alerts: the inbox, its counts, the lifecycle and escalation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from casemgr.alerts.schemas import Alert, AlertCount, InboxFilter

_COLUMNS = """
a.id, a.kind, a.severity::text AS severity, a.status::text AS status, a.org_unit_id, a.case_id,
a.handover_id, a.task_id, a.order_id, a.raised_at, a.details::text AS details, a.cleared_at,
a.acknowledged_by, a.acknowledged_at, a.resolved_by, a.resolved_at, a.outcome::text AS outcome,
a.resolution_note, a.escalation_level, a.escalated_at, a.escalated_to_unit_id, a.covered_by_absence_id
"""
# The application's scope and role filters; the policies filter again (and drop alerts on
# cases the caller may not read). An alert without a case (a referral not yet taken on)
# carries its program in its details.
_FILTERS = """
  FROM alerts a
  JOIN org_units o ON o.id = a.org_unit_id
  LEFT JOIN cases c ON c.id = a.case_id
 WHERE o.path <@ $1::ltree
   AND ($2::alert_status IS NULL OR a.status = $2::alert_status)
   AND ($3::text IS NULL OR a.kind = $3)
   AND ($4::alert_severity IS NULL OR a.severity = $4::alert_severity)
   AND ($5::boolean OR a.case_id IS NOT NULL)
   AND ($6::program IS NULL OR coalesce(c.program::text, a.details ->> 'program') = $6::text)
   AND (NOT $7::boolean OR c.shared_with_police)
   AND ($8::timestamptz IS NULL OR a.raised_at <= $8::timestamptz)
   AND ($9::bigint IS NULL OR a.escalated_to_unit_id = $9)
   AND ($10::bigint IS NULL OR c.officer_id = $10)
   AND ($11::bigint IS NULL OR a.case_id = $11)
"""
_LIST = f"""
SELECT {_COLUMNS}
{_FILTERS}
   AND ($12::bigint IS NULL OR a.id > $12)
 ORDER BY a.id
 LIMIT $13
"""
# The console's inbox reads the newest first: with more alerts than a page, the latest matter.
_LIST_NEWEST = f"""
SELECT {_COLUMNS}
{_FILTERS}
   AND ($12::bigint IS NULL OR a.id < $12)
 ORDER BY a.id DESC
 LIMIT $13
"""
_COUNTS = f"""
SELECT a.status::text AS status, a.severity::text AS severity, count(*)::int AS count
{_FILTERS}
 GROUP BY 1, 2
 ORDER BY 1, 2
"""
_GET = f"SELECT {_COLUMNS} FROM alerts a WHERE a.id = $1"
_LOCATE = "SELECT org_path::text, case_id FROM alert_locator($1)"
_ACKNOWLEDGE = """
UPDATE alerts SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = $3
 WHERE id = $1 AND status = 'new'
RETURNING id
"""
_RESOLVE = """
UPDATE alerts
   SET status = 'resolved', resolved_by = $2, resolved_at = $3, outcome = $4::alert_outcome,
       resolution_note = $5,
       acknowledged_by = coalesce(acknowledged_by, $2), acknowledged_at = coalesce(acknowledged_at, $3)
 WHERE id = $1 AND status <> 'resolved'
RETURNING id
"""
# One level up for every alert that has waited its severity's limit since it was raised or last
# escalated without anyone acknowledging it. Level 1 goes to the office over the alert's unit
# (or the unit itself when it is an office or higher), each next level to the parent; the root
# is the last. Re-checked row by row under the row lock, so two schedulers never escalate the
# same alert twice: the second finds escalated_at moved on.
_ESCALATE = """
WITH due AS (
    SELECT a.id,
           CASE WHEN a.escalation_level = 0 THEN
                    (SELECT up.id FROM org_units u JOIN org_units up ON u.path <@ up.path
                      WHERE u.id = a.org_unit_id AND up.kind IN ('office', 'district', 'city')
                      ORDER BY nlevel(up.path) DESC LIMIT 1)
                ELSE (SELECT parent_id FROM org_units WHERE id = a.escalated_to_unit_id)
           END AS next_unit
      FROM alerts a
      JOIN alert_escalation_limits l ON l.severity = a.severity
     WHERE a.status = 'new' AND a.covered_by_absence_id IS NULL
       AND coalesce(a.escalated_at, a.raised_at) + l.minutes * interval '1 minute' <= $1::timestamptz
)
UPDATE alerts a
   SET escalation_level = a.escalation_level + 1, escalated_at = $1::timestamptz,
       escalated_to_unit_id = due.next_unit
  FROM due, alert_escalation_limits l
 WHERE a.id = due.id AND due.next_unit IS NOT NULL
   AND l.severity = a.severity AND a.status = 'new'
   AND coalesce(a.escalated_at, a.raised_at) + l.minutes * interval '1 minute' <= $1::timestamptz
RETURNING a.id, a.escalation_level, a.escalated_to_unit_id
"""

# The live feed: changes after a number, inside the caller's scope (the policies filter again).
_CHANGES = f"""
SELECT ch.id AS change_id, {_COLUMNS}
  FROM alert_changes ch
  JOIN alerts a ON a.id = ch.alert_id
  JOIN org_units o ON o.id = a.org_unit_id
  LEFT JOIN cases c ON c.id = a.case_id
 WHERE ch.id > $1
   AND o.path <@ $2::ltree
   AND ($3::boolean OR a.case_id IS NOT NULL)
   AND ($4::program IS NULL OR coalesce(c.program::text, a.details ->> 'program') = $4::text)
   AND (NOT $5::boolean OR c.shared_with_police)
 ORDER BY ch.id
 LIMIT $6
"""
_LAST_CHANGE = "SELECT last_id FROM alert_change_head"
# The process-wide feed's read: every change after a number, with what deciding visibility
# needs, through a definer function (the feed serves every caller of the process).
_FEED = "SELECT * FROM alert_changes_after($1, $2)"

_details = msgspec.json.Decoder(dict[str, Any])


def _alert(record: asyncpg.Record) -> Alert:
    values = dict(record)
    values.pop("change_id", None)
    values["details"] = _details.decode(values["details"])
    return msgspec.convert(values, Alert)


def _filter_args(path: str, f: InboxFilter) -> list[Any]:
    return [
        path,
        f.status,
        f.kind,
        f.severity,
        f.include_unattached,
        f.program,
        f.shared_only,
        f.raised_before,
        f.escalated_to_unit_id,
        f.officer_id,
        f.case_id,
    ]


async def list_alerts(
    conn: asyncpg.Connection,
    *,
    path: str,
    filters: InboxFilter,
    after: int | None,
    limit: int,
    newest_first: bool = False,
) -> list[Alert]:
    """A page of alerts by id; `after` is the last id of the page before (lower ids follow it
    when newest_first)."""
    sql = _LIST_NEWEST if newest_first else _LIST
    records = await conn.fetch(sql, *_filter_args(path, filters), after, limit)
    return [_alert(r) for r in records]


async def counts(conn: asyncpg.Connection, *, path: str, filters: InboxFilter) -> list[AlertCount]:
    return [
        AlertCount(status=r["status"], severity=r["severity"], count=r["count"])
        for r in await conn.fetch(_COUNTS, *_filter_args(path, filters))
    ]


async def get(conn: asyncpg.Connection, alert_id: int) -> Alert | None:
    record = await conn.fetchrow(_GET, alert_id)
    return None if record is None else _alert(record)


async def locate(conn: asyncpg.Connection, alert_id: int) -> tuple[str, int | None] | None:
    record = await conn.fetchrow(_LOCATE, alert_id)
    return None if record is None else (record[0], record[1])


async def acknowledge(conn: asyncpg.Connection, alert_id: int, by: int, at: datetime) -> bool:
    return await conn.fetchval(_ACKNOWLEDGE, alert_id, by, at) is not None


async def resolve(
    conn: asyncpg.Connection, alert_id: int, by: int, at: datetime, outcome: str, note: str
) -> bool:
    return await conn.fetchval(_RESOLVE, alert_id, by, at, outcome, note) is not None


async def changes_after(
    conn: asyncpg.Connection, after: int, *, path: str, filters: InboxFilter, limit: int
) -> list[tuple[int, Alert]]:
    records = await conn.fetch(
        _CHANGES, after, path, filters.include_unattached, filters.program, filters.shared_only, limit
    )
    return [(r["change_id"], _alert(r)) for r in records]


async def last_change(conn: asyncpg.Connection) -> int:
    last: int = await conn.fetchval(_LAST_CHANGE)
    return last


class FeedRow(msgspec.Struct, frozen=True):
    change_id: int
    org_path: str
    program: str | None
    shared_with_police: bool
    alert: Alert


async def feed_after(conn: asyncpg.Connection, after: int, limit: int) -> list[FeedRow]:
    rows = []
    for record in await conn.fetch(_FEED, after, limit):
        values = dict(record)
        change_id = values.pop("change_id")
        org_path = values.pop("org_path")
        program = values.pop("program")
        shared = values.pop("shared_with_police")
        values["details"] = _details.decode(values["details"])
        rows.append(FeedRow(change_id, org_path, program, shared, msgspec.convert(values, Alert)))
    return rows


async def escalate_due(conn: asyncpg.Connection, now: datetime) -> list[tuple[int, int, int]]:
    return [(r[0], r[1], r[2]) for r in await conn.fetch(_ESCALATE, now)]
