"""Electronic monitoring in the demo city: orders in force on some community-corrections
cases, each with a device, a home with a night curfew and a place to keep away from.

The device secrets are returned so that the demo's device simulator can report as the
devices; a real deployment shows a secret once, at registration, to whoever fits the device.
"""

from __future__ import annotations

import math
import random
import secrets
from datetime import datetime, timedelta

import asyncpg
import msgspec
from tracking.contract import secret_associated_data

from casemgr.crypto import Keyring

CITY_CENTRE = (121.47, 31.23)
_CASES = """
SELECT c.id, c.officer_id, c.org_unit_id FROM cases c
 WHERE c.program = 'community_corrections' AND c.status = 'active'
   AND NOT EXISTS (SELECT 1 FROM monitoring_orders o
                    WHERE o.case_id = c.id AND o.status IN ('requested', 'active'))
 ORDER BY c.id
 LIMIT $1
"""
_APPROVER = "SELECT id FROM accounts WHERE username = 'supervisor.city'"
_ORDER = """
INSERT INTO monitoring_orders (case_id, reason_code, legal_basis, assessment_ref, status, requested_by,
                               requested_at, decided_by, decided_at, starts_at, first_ends_at, ends_at)
VALUES ($1, 'court_curfew', $2, $3, 'active', $4, $5, $6, $5, $5, $7, $7)
RETURNING id
"""
_DEVICE = """
INSERT INTO devices (id, org_unit_id, secret_sealed, reporting_interval_s, registered_by, registered_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""
_ASSIGN = (
    "INSERT INTO device_assignments (device_id, order_id, assigned_by, assigned_at) VALUES ($1, $2, $3, $4)"
)
_ZONE = """
INSERT INTO zones (order_id, kind, label, shape, buffer_m, schedule, grace_minutes, created_by, created_at)
VALUES ($1, $2::zone_kind, $3, $4::jsonb, $5, $6::jsonb, $7, $8, $9)
"""
_CURFEW = [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "22:00", "end": "06:00"}]


class DemoDevice(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    secret: str
    order_id: int
    home: tuple[float, float]
    home_radius_m: float
    keep_away: tuple[float, float]
    keep_away_radius_m: float
    interval_s: int


def _offset(point: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    lon, lat = point
    return (
        lon + east_m / (111_195.0 * math.cos(math.radians(lat))),
        lat + north_m / 111_195.0,
    )


def _circle(centre: tuple[float, float], radius_m: float) -> str:
    return msgspec.json.encode({"type": "circle", "centre": list(centre), "radius_m": radius_m}).decode()


async def seed_monitoring(
    conn: asyncpg.Connection, keyring: Keyring, now: datetime, count: int = 60, interval_s: int = 30
) -> list[DemoDevice]:
    rng = random.Random(11643)
    approver = await conn.fetchval(_APPROVER)
    devices = []
    async with conn.transaction():
        for n, (case_id, officer_id, unit_id) in enumerate(await conn.fetch(_CASES, count), start=1):
            order_id = await conn.fetchval(
                _ORDER,
                case_id,
                f"judgment (2026) {case_id}",
                f"assessment {case_id}",
                officer_id,
                now,
                approver,
                now + timedelta(days=rng.randrange(30, 90)),
            )
            device_id = f"DEMO-EM-{n:04d}"
            secret = secrets.token_urlsafe(32)
            sealed = keyring.seal(secret.encode(), secret_associated_data(device_id))
            await conn.execute(_DEVICE, device_id, unit_id, sealed, interval_s, approver, now)
            await conn.execute(_ASSIGN, device_id, order_id, officer_id, now)
            home = _offset(CITY_CENTRE, rng.uniform(-8000, 8000), rng.uniform(-8000, 8000))
            angle = rng.uniform(0, 2 * math.pi)
            keep_away = _offset(home, 1500 * math.cos(angle), 1500 * math.sin(angle))
            curfew = msgspec.json.encode(_CURFEW).decode()
            await conn.execute(
                _ZONE, order_id, "inclusion", "home", _circle(home, 80), 30, curfew, 15, officer_id, now
            )
            await conn.execute(
                _ZONE,
                order_id,
                "exclusion",
                "victim's workplace",
                _circle(keep_away, 150),
                20,
                None,
                0,
                officer_id,
                now,
            )
            devices.append(
                DemoDevice(
                    device_id=device_id,
                    secret=secret,
                    order_id=order_id,
                    home=home,
                    home_radius_m=80,
                    keep_away=keep_away,
                    keep_away_radius_m=150,
                    interval_s=interval_s,
                )
            )
    return devices
