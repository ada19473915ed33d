"""The benchmark fleet: monitored subjects made by a formula, not read from a file.

Subject n has the device "B%07d", a secret that is the run's salt followed by the same digits,
a home spread over 40 x 40 km by two irrational strides, and --zones zones: a home with a night
curfew and exclusion zones around it. bench/wrk/pings.lua computes the same formula: a load
generator that reads a million devices from a file spends more of the shared cores on its own
memory than the server spends on the pings (seen: wrk at 90 % CPU). bench/postgis_peer.py loads
the same subjects into its tables.
"""

from __future__ import annotations

import base64
import math
import os
import time
from pathlib import Path

import msgspec
from redis.asyncio import Redis
from tracking.contract import CircleShape, DeviceConfig, ScheduleWindow, ZoneSpec, secret_associated_data
from tracking.keys import KeySpace
from tracking.publishing import config_fields, schedule_deadlines

from casemgr.config import DataKey
from casemgr.crypto import Keyring

ROOT = Path(__file__).resolve().parents[1]
CENTRE = (121.47, 31.23)
# The data key the run's tracking servers get (CASEMGR_DATA_KEYS), which seals each device's secret.
DATA_KEY = base64.b64encode(os.urandom(32)).decode()
KEYRING = Keyring((DataKey(key_id="bench", key=base64.b64decode(DATA_KEY)),))


def offset(point: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    return (
        point[0] + east_m / (111_195.0 * math.cos(math.radians(point[1]))),
        point[1] + north_m / 111_195.0,
    )


SECRET_SALT = base64.urlsafe_b64encode(os.urandom(18)).decode()


def device_id_of(n: int) -> str:
    return f"B{n:07d}"


def secret_of(n: int, salt: str = SECRET_SALT) -> str:
    """Device n's secret; another process of the run (its own SECRET_SALT) passes the run's salt."""
    return f"{salt}{n:07d}"


def home_of(n: int) -> tuple[float, float]:
    return offset(
        CENTRE, ((n * 0.6180339887498949) % 1 - 0.5) * 40_000, ((n * 0.7548776662466927) % 1 - 0.5) * 40_000
    )


def subject(n: int, zones: int, version: int, now_ms: int) -> DeviceConfig:
    home = home_of(n)
    specs = [
        ZoneSpec(
            id=n * 10 + 1,
            kind="inclusion",
            shape=CircleShape(centre=home, radius_m=150),
            buffer_m=30,
            schedule=[ScheduleWindow(days=[1, 2, 3, 4, 5, 6, 7], start="22:00", end="06:00")],
            grace_minutes=15,
        )
    ]
    for z in range(1, zones):
        angle = 2 * math.pi * z / zones
        specs.append(
            ZoneSpec(
                id=n * 10 + 1 + z,
                kind="exclusion",
                shape=CircleShape(
                    centre=offset(home, 250 * math.cos(angle), 250 * math.sin(angle)), radius_m=60
                ),
                buffer_m=20,
            )
        )
    device_id = device_id_of(n)
    return DeviceConfig(
        device_id=device_id,
        version=version,
        secret=KEYRING.seal(secret_of(n).encode(), secret_associated_data(device_id)),
        interval_s=60,
        order_id=n + 1,
        case_id=n + 1,
        org_unit_id=1,
        starts_at_ms=now_ms - 40 * 86_400_000,
        ends_at_ms=now_ms + 50 * 86_400_000,
        zones=specs,
    )


async def publish(redis: Redis, keyspace: KeySpace, subjects: int, zones: int) -> float:
    """Publish every subject through the publish script, pipelined; returns the seconds taken."""
    script = (ROOT / "tracking" / "scripts" / "publish.lua").read_text()
    sha = await redis.script_load(script)
    now_ms = int(time.time() * 1000)
    started = time.perf_counter()
    # Every subject has the same curfew in the same time zone, so the times of its deadlines are
    # worked out once (it was half the time of publishing a million subjects).
    curfew = [
        (member.split("|")[0], ms) for member, ms in schedule_deadlines(subject(0, zones, 1, now_ms), now_ms)
    ]
    for first in range(0, subjects, 2000):
        pipe = redis.pipeline(transaction=False)
        for n in range(first, min(first + 2000, subjects)):
            config = subject(n, zones, 1, now_ms)
            keys = keyspace.device(config.device_id).for_publish()
            pipe.evalsha(
                sha,
                len(keys),
                *keys,
                1,
                msgspec.msgpack.encode(config_fields(config)),
                msgspec.msgpack.encode(
                    [[f"{kind}|{config.device_id}|{n * 10 + 1}", ms] for kind, ms in curfew]
                ),
                msgspec.msgpack.encode(config),
            )
        await pipe.execute()
    return time.perf_counter() - started
