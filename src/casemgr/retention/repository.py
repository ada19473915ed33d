"""The SQL of retention. Every statement runs as the database owner, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

import asyncpg

# Orders that ended (early, or at their end in force) before the cutoff and still have history.
_ORDERS_TO_PURGE = """
SELECT id FROM monitoring_orders
 WHERE pings_purged_at IS NULL AND status <> 'requested'
   AND coalesce(ended_at, ends_at) < $1
 ORDER BY id
 LIMIT $2
"""
_PURGE_PINGS = "DELETE FROM pings WHERE order_id = $1"
_MARK_PURGED = "UPDATE monitoring_orders SET pings_purged_at = $2 WHERE id = $1"

# People whose every case is closed, the last of them before the cutoff, not yet anonymised.
_PEOPLE_TO_ANONYMISE = """
SELECT p.id FROM persons p
 WHERE p.anonymised_at IS NULL
   AND EXISTS (SELECT 1 FROM cases c WHERE c.person_id = p.id)
   AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.person_id = p.id
                    AND (c.status <> 'closed' OR c.closed_at IS NULL OR c.closed_at >= $1))
 ORDER BY p.id
 LIMIT $2
"""
# What names, identifies or describes the person goes; what the statistics count stays: the
# cases, their program, unit, dates and outcome, the contacts' kind and time, the alerts.
_ANONYMISE = [
    """UPDATE persons SET full_name = '(anonymised)', name_pinyin = '', name_initials = '',
              id_number = NULL, aliases = '{}', phones = '[]', contacts = '[]',
              birth_date = date_trunc('year', birth_date)::date, anonymised_at = $2, updated_at = $2
        WHERE id = $1""",
    "DELETE FROM person_addresses WHERE person_id = $1",
    """UPDATE cases SET details = NULL, sealed_details = NULL, updated_at = $2
        WHERE person_id = $1""",
    "UPDATE case_events SET note = NULL WHERE case_id IN (SELECT id FROM cases WHERE person_id = $1)",
    "UPDATE case_contacts SET note = NULL WHERE case_id IN (SELECT id FROM cases WHERE person_id = $1)",
    """UPDATE service_referrals SET note = NULL, provider = '(anonymised)'
        WHERE case_id IN (SELECT id FROM cases WHERE person_id = $1)""",
    "DELETE FROM case_notes WHERE case_id IN (SELECT id FROM cases WHERE person_id = $1)",
    "DELETE FROM case_documents WHERE case_id IN (SELECT id FROM cases WHERE person_id = $1)",
    """UPDATE handovers SET person = NULL, detail = NULL, sealed_detail = NULL, note = NULL,
              decision_note = NULL
        WHERE case_id IN (SELECT id FROM cases WHERE person_id = $1)""",
    # A referral that became one of the cases keeps its row (the handover happened), not the
    # person it described.
    """UPDATE handovers SET person = '{"full_name": "(anonymised)"}', detail = NULL,
              sealed_detail = NULL, note = NULL, decision_note = NULL
        WHERE intake_case_id IN (SELECT id FROM cases WHERE person_id = $1)""",
    "DELETE FROM pings WHERE case_id IN (SELECT id FROM cases WHERE person_id = $1)",
]


async def orders_to_purge(conn: asyncpg.Connection, cutoff: datetime, limit: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(_ORDERS_TO_PURGE, cutoff, limit)]


async def purge_pings(conn: asyncpg.Connection, order_id: int, now: datetime) -> int:
    status = await conn.execute(_PURGE_PINGS, order_id)
    await conn.execute(_MARK_PURGED, order_id, now)
    return int(status.split()[-1])


async def people_to_anonymise(conn: asyncpg.Connection, cutoff: datetime, limit: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(_PEOPLE_TO_ANONYMISE, cutoff, limit)]


async def anonymise(conn: asyncpg.Connection, person_id: int, now: datetime) -> None:
    for statement in _ANONYMISE:
        if "$2" in statement:
            await conn.execute(statement, person_id, now)
        else:
            await conn.execute(statement, person_id)
