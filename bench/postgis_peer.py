"""The peer of the ping ingest: the design an integrator would build first.

Each upload is one SQL statement on PostgreSQL with PostGIS: its pings are inserted into a
table keyed by (device, sequence number), and each new ping is checked against its subject's
zones in SQL (ST_DWithin for a circle, ST_Covers for a polygon); a ping inside an exclusion
zone inserts an alert in the same statement. It answers 202 once that statement has committed,
with the same reply as the tracking service. Devices authenticate with their secret as a bearer
token, compared in constant time against secrets loaded at start, as the tracking service does.

What it leaves out, and the tracking service does not: hysteresis, the crossing check, curfew
schedules, open conditions (one alert per condition), the state machine's ordering rules and
the no-signal watchdog. It is a lower bound on the work of a SQL design, not the same product.
Its sessions run with synchronous_commit off: a commit is durable within a fraction of a second,
as a ping queued in Redis with AOF (appendfsync everysec) is; the benchmark's Redis has no AOF.

Served by casemgr.serving like the tracking service (PEER_DATABASE_URL names the database that
`prepare` loaded):

    python -m casemgr.serving bench.postgis_peer:build --port 8200 --workers 2
"""

from __future__ import annotations

import hmac
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar, Request, Response, post
from tracking.wire import Ping

# The whole design in one statement: insert the new pings, test them against their subject's
# zones, and record an alert for every exclusion zone a new ping is in.
_INGEST = """
WITH fixes AS (
    SELECT * FROM unnest($2::bigint[], $3::timestamptz[], $4::float8[], $5::float8[], $6::real[],
                         $7::smallint[], $8::text[])
        AS f(seq, fix_time, lon, lat, accuracy_m, battery, strap)
), inserted AS (
    INSERT INTO peer_pings (device_id, seq, fix_time, position, accuracy_m, battery, strap)
    SELECT $1, seq, fix_time, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, accuracy_m, battery, strap
      FROM fixes
    ON CONFLICT (device_id, seq) DO NOTHING
    RETURNING seq, position
), hits AS (
    SELECT i.seq, z.zone_id, z.exclusion
      FROM inserted i JOIN peer_zones z ON z.device_id = $1
     WHERE CASE WHEN z.radius_m > 0 THEN ST_DWithin(z.area, i.position, z.radius_m)
                ELSE ST_Covers(z.area, i.position) END
), alerts AS (
    INSERT INTO peer_alerts (device_id, zone_id, seq, kind)
    SELECT $1, zone_id, seq, 'exclusion_zone_entered' FROM hits WHERE exclusion
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS accepted, (SELECT count(*) FROM alerts) AS alerts
"""

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS postgis;
DROP TABLE IF EXISTS peer_pings, peer_zones, peer_alerts, peer_devices;
CREATE TABLE peer_devices (device_id text PRIMARY KEY, secret text NOT NULL);
CREATE TABLE peer_zones (
    zone_id bigint PRIMARY KEY,
    device_id text NOT NULL REFERENCES peer_devices,
    exclusion boolean NOT NULL,
    area geography NOT NULL,       -- a circle's centre, or a polygon
    radius_m real NOT NULL         -- 0 for a polygon
);
CREATE INDEX peer_zones_device ON peer_zones (device_id);
CREATE TABLE peer_pings (
    device_id text NOT NULL,
    seq bigint NOT NULL,
    fix_time timestamptz NOT NULL,
    position geography(Point, 4326) NOT NULL,
    accuracy_m real,
    battery smallint,
    strap text,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, seq)
);
CREATE TABLE peer_alerts (
    id bigserial PRIMARY KEY,
    device_id text NOT NULL,
    zone_id bigint NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    raised_at timestamptz NOT NULL DEFAULT now()
);
"""


_decode_one = msgspec.json.Decoder(Ping).decode
_decode_many = msgspec.json.Decoder(list[Ping]).decode


async def prepare(
    dsn: str, devices: list[tuple[str, str]], zones: list[tuple[int, str, bool, float, float, float]]
) -> None:
    """Create the peer's tables and load its subjects: devices (id, secret) and circular zones
    (zone id, device id, exclusion, centre longitude, centre latitude, radius in metres)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        await conn.copy_records_to_table("peer_devices", records=devices)
        await conn.execute(
            """
            INSERT INTO peer_zones (zone_id, device_id, exclusion, area, radius_m)
            SELECT z, d, x, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, r
              FROM unnest($1::bigint[], $2::text[], $3::bool[], $4::float8[], $5::float8[], $6::real[])
                AS t(z, d, x, lon, lat, r)
            """,
            *(list(column) for column in zip(*zones, strict=True)),
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def build() -> Litestar:
    dsn = os.environ["PEER_DATABASE_URL"]
    secrets: dict[str, bytes] = {}
    state: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            dsn, min_size=8, max_size=8, server_settings={"synchronous_commit": "off"}
        )
        for row in await pool.fetch("SELECT device_id, secret FROM peer_devices"):
            secrets[row["device_id"]] = row["secret"].encode()
        state["pool"] = pool
        try:
            yield
        finally:
            await pool.close()

    @post("/v1/pings", status_code=202)
    async def ingest(request: Request[Any, Any, Any]) -> Response[bytes]:
        device_id = request.headers.get("x-device-id", "")
        token = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        secret = secrets.get(device_id)
        if secret is None or not hmac.compare_digest(token, secret):
            return Response(b'{"detail":"unknown device or wrong secret"}', status_code=401)
        body = await request.body()
        try:
            pings = _decode_many(body) if body[:1] == b"[" else [_decode_one(body)]
        except msgspec.ValidationError as e:
            return Response(f'{{"detail":"{e}"}}'.encode(), status_code=400)
        if any(p.device_id != device_id or p.latitude is None or p.longitude is None for p in pings):
            return Response(b'{"detail":"a ping of another device, or without a position"}', status_code=422)
        row = await state["pool"].fetchrow(
            _INGEST,
            device_id,
            [p.seq for p in pings],
            [p.fix_time for p in pings],
            [p.longitude for p in pings],
            [p.latitude for p in pings],
            [p.accuracy_m for p in pings],
            [p.battery_percent for p in pings],
            [p.strap_state for p in pings],
        )
        accepted = row["accepted"]
        return Response(
            f'{{"accepted":{accepted},"duplicate":{len(pings) - accepted},"rejected":[]}}'.encode(),
            status_code=202,
            media_type="application/json",
        )

    return Litestar(
        route_handlers=[ingest], lifespan=[lifespan], openapi_config=None, logging_config=None, debug=False
    )
