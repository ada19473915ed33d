"""All SQL of the audit area. The insert trigger assigns id, time and hash links."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

_INSERT = """
INSERT INTO audit_log (actor_id, actor_role, actor_org_unit_id, action, object_type,
                       object_id, purpose, outcome, reason, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

_SELECT_COLUMNS = """
id, at, actor_id, actor_role, actor_org_unit_id, action, object_type, object_id, purpose,
outcome, reason, request_id, prev_hash, hash
"""

# Newest first, keyset-paginated on id; NULL filters mean "any".
_LIST = f"""
SELECT {_SELECT_COLUMNS} FROM audit_log
 WHERE ($1::bigint IS NULL OR id < $1)
   AND ($2::bigint IS NULL OR actor_id = $2)
   AND ($3::text IS NULL OR action = $3)
   AND ($4::text IS NULL OR object_type = $4)
   AND ($5::text IS NULL OR object_id = $5)
   AND ($6::text IS NULL OR outcome = $6)
 ORDER BY id DESC
 LIMIT $7
"""

_CHAIN_PAGE = f"SELECT {_SELECT_COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
_HEAD = "SELECT last_id, last_hash FROM audit_head"


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """What the application says happened."""

    actor_id: int | None
    actor_role: str | None
    actor_org_unit_id: int | None
    action: str
    object_type: str | None
    object_id: str | None
    purpose: str | None
    outcome: str
    reason: str | None
    request_id: str | None


class AuditRow(AuditEntry, frozen=True, kw_only=True):
    """An entry as stored: with the id, time and links the insert trigger gave it."""

    id: int
    at: datetime
    prev_hash: bytes
    hash: bytes


def _row(record: asyncpg.Record) -> AuditRow:
    return AuditRow(**dict(record))


async def insert(conn: asyncpg.Connection, entry: AuditEntry) -> None:
    await conn.execute(
        _INSERT,
        entry.actor_id,
        entry.actor_role,
        entry.actor_org_unit_id,
        entry.action,
        entry.object_type,
        entry.object_id,
        entry.purpose,
        entry.outcome,
        entry.reason,
        entry.request_id,
    )


async def list_rows(
    conn: asyncpg.Connection,
    *,
    before_id: int | None,
    actor_id: int | None,
    action: str | None,
    object_type: str | None,
    object_id: str | None,
    outcome: str | None,
    limit: int,
) -> list[AuditRow]:
    records = await conn.fetch(_LIST, before_id, actor_id, action, object_type, object_id, outcome, limit)
    return [_row(r) for r in records]


async def chain_page(conn: asyncpg.Connection, after_id: int, limit: int) -> list[AuditRow]:
    return [_row(r) for r in await conn.fetch(_CHAIN_PAGE, after_id, limit)]


async def head(conn: asyncpg.Connection) -> tuple[int, bytes]:
    record = await conn.fetchrow(_HEAD)
    assert record is not None
    return record["last_id"], record["last_hash"]
