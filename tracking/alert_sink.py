"""The alert sink: alert streams into casemgr's alerts table.

A raise becomes one alert row keyed by its tracking event id, so a redelivered event is a
no-op; tracking decides what is a second alert (it keeps conditions open), not this sink. A
clear marks when the device side of the condition ended; an officer still closes the alert.
Alert rows hold ids and times only, never a position.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from tracking.streams import Entry

ALERT_GROUP = "alerts"
_INSERT = """
INSERT INTO alerts (kind, severity, org_unit_id, case_id, order_id, raised_at, details, dedupe_key, event_id)
SELECT * FROM unnest($1::text[], $2::alert_severity[], $3::bigint[], $4::bigint[], $5::bigint[],
                     $6::timestamptz[], $7::jsonb[], $8::text[], $9::text[])
ON CONFLICT DO NOTHING
"""
_CLEAR = "SELECT tracking_clear_alert($1, $2)"
_encode = msgspec.json.Encoder().encode


def _ms(value: bytes) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


async def handle_alerts(pool: asyncpg.Pool, entries: list[Entry]) -> None:
    columns: list[list[Any]] = [[] for _ in range(9)]
    clears: list[tuple[str, datetime]] = []
    for _, f in entries:
        event_id = f[b"id"].decode()
        if f[b"act"] == b"clear":
            clears.append((event_id, _ms(f[b"at"])))
            continue
        details = {
            "device_id": f[b"dev"].decode(),
            "order_id": int(f[b"ord"]),
            "zone_id": int(f[b"zone"]) if f[b"zone"] else None,
            "fixes": [int(s) for s in f[b"fixes"].decode().split(",") if s],
            "via": f[b"via"].decode() or None,
            "received_at": _ms(f[b"rx"]).isoformat(),
        }
        values = (
            f[b"kind"].decode(),
            f[b"sev"].decode(),
            int(f[b"unit"]),
            int(f[b"case"]),
            int(f[b"ord"]),
            _ms(f[b"at"]),
            _encode(details).decode(),
            f"em:{event_id}",
            event_id,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    async with pool.acquire() as conn, conn.transaction():
        if columns[0]:
            await conn.execute(_INSERT, *columns)
        # A clear follows its raise in the same shard's stream, so the raise is in by now.
        for event_id, at in clears:
            await conn.execute(_CLEAR, event_id, at)
