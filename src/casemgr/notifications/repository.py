"""All SQL of notifications: endpoints, the outbox, its backlog."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from casemgr.notifications.schemas import BacklogRow, Endpoint

_ENDPOINT_COLUMNS = """
e.id, e.org_unit_id, e.channel::text AS channel, e.target, e.severities::text[] AS severities, e.active,
e.created_by, e.created_at
"""
_INSERT_ENDPOINT = """
INSERT INTO notification_endpoints (org_unit_id, channel, target, secret_sealed, severities, created_by,
                                    created_at)
VALUES ($1, $2::notification_channel, $3, $4, $5::alert_severity[], $6, $7)
RETURNING id
"""
_ENDPOINT = f"SELECT {_ENDPOINT_COLUMNS} FROM notification_endpoints e WHERE e.id = $1"
_ENDPOINTS = f"""
SELECT {_ENDPOINT_COLUMNS}
  FROM notification_endpoints e JOIN org_units u ON u.id = e.org_unit_id
 WHERE u.path <@ $1::ltree
 ORDER BY e.id
"""
_DEACTIVATE = "UPDATE notification_endpoints SET active = false WHERE id = $1 AND active RETURNING id"
_BACKLOG = """
SELECT e.id AS endpoint_id,
       count(*) FILTER (WHERE o.status = 'pending')::int AS pending,
       count(*) FILTER (WHERE o.status = 'delivered')::int AS delivered,
       count(*) FILTER (WHERE o.status = 'dead')::int AS dead,
       min(o.created_at) FILTER (WHERE o.status = 'pending') AS oldest_pending_at
  FROM notification_endpoints e
  JOIN org_units u ON u.id = e.org_unit_id
  LEFT JOIN notification_outbox o ON o.endpoint_id = e.id
 WHERE u.path <@ $1::ltree
 GROUP BY e.id
 ORDER BY e.id
"""
# Lease what is due (moving its next attempt a lease ahead) so that deliveries run outside any
# transaction and two dispatchers never send the same row at once.
_CLAIM = """
WITH due AS (
    SELECT id FROM notification_outbox
     WHERE status = 'pending' AND next_attempt_at <= $1
     ORDER BY next_attempt_at
     LIMIT $3
       FOR UPDATE SKIP LOCKED
)
UPDATE notification_outbox o SET next_attempt_at = $1 + $2 * interval '1 second'
  FROM due, notification_endpoints e
 WHERE o.id = due.id AND e.id = o.endpoint_id
RETURNING o.id, o.endpoint_id, o.attempts, o.payload::text AS payload, e.channel::text AS channel, e.target,
          e.secret_sealed
"""
_DELIVERED = """
UPDATE notification_outbox SET status = 'delivered', delivered_at = $2, attempts = attempts + 1 WHERE id = $1
"""
_SET_SECRET = "UPDATE notification_endpoints SET secret_sealed = $2 WHERE id = $1"
_ENDPOINT_PATH = "SELECT notification_endpoint_path($1)::text"
_FAILED = """
UPDATE notification_outbox
   SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3,
       status = CASE WHEN $4 THEN 'dead'::notification_status ELSE status END
 WHERE id = $1
"""


def _endpoint(record: asyncpg.Record) -> Endpoint:
    return msgspec.convert(dict(record), Endpoint)


async def insert_endpoint(
    conn: asyncpg.Connection,
    *,
    org_unit_id: int,
    channel: str,
    target: str,
    sealed: bytes | None,
    severities: list[str],
    by: int,
    at: datetime,
) -> Endpoint:
    endpoint_id = await conn.fetchval(
        _INSERT_ENDPOINT, org_unit_id, channel, target, sealed, severities, by, at
    )
    record = await conn.fetchrow(_ENDPOINT, endpoint_id)
    assert record is not None  # just inserted, in this transaction
    return _endpoint(record)


async def set_secret(conn: asyncpg.Connection, endpoint_id: int, sealed: bytes) -> None:
    await conn.execute(_SET_SECRET, endpoint_id, sealed)


async def endpoint_path(conn: asyncpg.Connection, endpoint_id: int) -> str | None:
    """The path of the endpoint's unit, whatever the caller may see (for the object check)."""
    path: str | None = await conn.fetchval(_ENDPOINT_PATH, endpoint_id)
    return path


async def endpoints(conn: asyncpg.Connection, path: str) -> list[Endpoint]:
    return [_endpoint(r) for r in await conn.fetch(_ENDPOINTS, path)]


async def endpoint(conn: asyncpg.Connection, endpoint_id: int) -> Endpoint | None:
    record = await conn.fetchrow(_ENDPOINT, endpoint_id)
    return None if record is None else _endpoint(record)


async def deactivate(conn: asyncpg.Connection, endpoint_id: int) -> bool:
    return await conn.fetchval(_DEACTIVATE, endpoint_id) is not None


async def backlog(conn: asyncpg.Connection, path: str) -> list[BacklogRow]:
    return [msgspec.convert(dict(r), BacklogRow) for r in await conn.fetch(_BACKLOG, path)]


async def claim(conn: asyncpg.Connection, now: datetime, lease_s: int, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(_CLAIM, now, lease_s, limit)]


async def delivered(conn: asyncpg.Connection, outbox_id: int, at: datetime) -> None:
    await conn.execute(_DELIVERED, outbox_id, at)


async def failed(conn: asyncpg.Connection, outbox_id: int, error: str, next_at: datetime, dead: bool) -> None:
    await conn.execute(_FAILED, outbox_id, error[:300], next_at, dead)
