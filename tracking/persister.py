"""The persister: ping streams into the partitioned pings table, idempotently.

Each batch of stream entries becomes one COPY into a temporary table and one INSERT into
pings that skips what is there already (device, sequence number, fix time), in one
transaction; the stream entries are acknowledged after it commits. A day's partition is
created the first time a fix of that day arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import msgspec

from tracking.streams import Entry

PERSISTER_GROUP = "persister"
_CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS pings_in (
    device_id text, seq bigint, order_id bigint, case_id bigint,
    fixed_at timestamptz, received_at timestamptz,
    longitude double precision, latitude double precision, accuracy_m real, speed_mps real,
    battery_percent smallint, strap_state text, case_state text
) ON COMMIT DELETE ROWS
"""
_COLUMNS = (
    "device_id",
    "seq",
    "order_id",
    "case_id",
    "fixed_at",
    "received_at",
    "longitude",
    "latitude",
    "accuracy_m",
    "speed_mps",
    "battery_percent",
    "strap_state",
    "case_state",
)
_MOVE = f"""
INSERT INTO pings ({", ".join(_COLUMNS)}) SELECT {", ".join(_COLUMNS)} FROM pings_in
ON CONFLICT DO NOTHING
"""
_ENSURE_PARTITION = "SELECT ensure_ping_partition($1)"
_fixes = msgspec.msgpack.Decoder(list[list[Any]])


def _value(value: Any) -> Any:
    return None if value is False else value


def rows_of(entries: list[Entry]) -> list[tuple[Any, ...]]:
    rows = []
    for _, fields in entries:
        device_id = fields[b"dev"].decode()
        order_id = int(fields[b"ord"])
        case_id = int(fields[b"case"])
        received_at = datetime.fromtimestamp(int(fields[b"rx"]) / 1000, tz=UTC)
        for fix in _fixes.decode(fields[b"d"]):
            seq, t_ms, lon, lat, accuracy, speed, battery, strap, case_state = fix[:9]
            rows.append(
                (
                    device_id,
                    int(seq),
                    order_id,
                    case_id,
                    datetime.fromtimestamp(t_ms / 1000, tz=UTC),
                    received_at,
                    _value(lon),
                    _value(lat),
                    _value(accuracy),
                    _value(speed),
                    _value(battery),
                    strap,
                    case_state,
                )
            )
    return rows


@dataclass(slots=True)
class Persister:
    pool: asyncpg.Pool
    _days: set[date] = field(default_factory=set)

    async def handle(self, entries: list[Entry]) -> None:
        rows = rows_of(entries)
        if not rows:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            for day in {row[4].date() for row in rows} - self._days:
                await conn.execute(_ENSURE_PARTITION, day)
                self._days.add(day)
            await conn.execute(_CREATE_STAGE)
            await conn.copy_records_to_table("pings_in", records=rows, columns=_COLUMNS)
            await conn.execute(_MOVE)
