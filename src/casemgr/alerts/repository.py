"""All SQL of alerts."""

from __future__ import annotations

import asyncpg
import msgspec

from casemgr.alerts.schemas import Alert

# The application's scope and role filters; the policies filter again (and drop alerts on
# cases the caller may not read). An alert without a case (a referral not yet taken on)
# carries its program in its details.
_LIST = """
SELECT a.id, a.kind, a.severity::text AS severity, a.status::text AS status, a.org_unit_id, a.case_id,
       a.handover_id, a.task_id, a.raised_at, a.details::text AS details
  FROM alerts a
  JOIN org_units o ON o.id = a.org_unit_id
  LEFT JOIN cases c ON c.id = a.case_id
 WHERE o.path <@ $1::ltree
   AND ($2::alert_status IS NULL OR a.status = $2::alert_status)
   AND ($3::text IS NULL OR a.kind = $3)
   AND ($4::bigint IS NULL OR a.id > $4)
   AND ($6::boolean OR a.case_id IS NOT NULL)
   AND ($7::program IS NULL OR coalesce(c.program::text, a.details ->> 'program') = $7::text)
   AND (NOT $8::boolean OR c.shared_with_police)
 ORDER BY a.id
 LIMIT $5
"""


async def list_alerts(
    conn: asyncpg.Connection,
    *,
    path: str,
    status: str | None,
    kind: str | None,
    after: int | None,
    limit: int,
    include_unattached: bool,
    program: str | None,
    shared_only: bool,
) -> list[Alert]:
    records = await conn.fetch(
        _LIST, path, status, kind, after, limit, include_unattached, program, shared_only
    )
    result = []
    for r in records:
        values = dict(r)
        values["details"] = msgspec.json.decode(values["details"])
        result.append(msgspec.convert(values, Alert))
    return result
