"""Telling the tracking core what it must know of a device, reliably.

Every change to an order, its zones or its device queues the device in tracking_outbox and
builds its configuration inside the same transaction, under the device's configuration lock
with the next version number, so versions follow commit order. After the commit the request
publishes to Redis and dequeues. If Redis was away, the row stays, and the outbox loop of every
worker publishes it again (a fresh build, a fresh version) until it succeeds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import msgspec
import structlog
from redis.exceptions import RedisError
from tracking.contract import CircleShape, DeviceConfig, PolygonShape, ScheduleWindow, ZoneSpec
from tracking.keys import KeySpace
from tracking.publishing import publish_device, remove_device
from tracking.scripts import Scripts

from casemgr.clock import Clock
from casemgr.db import scoped_transaction
from casemgr.monitoring import repository
from casemgr.monitoring.schemas import CircleIn, Zone
from casemgr.redis_client import RedisClient
from casemgr.supervision import repository as supervision
from casemgr.supervision.engine import system_principal

log = structlog.get_logger(__name__)
_OUTBOX_BATCH = 500


@dataclass(frozen=True, slots=True)
class Staged:
    """A configuration built in a committed (or committing) transaction, to publish after it."""

    device_id: str
    version: int
    config: DeviceConfig | None  # None: the device is retired; tracking forgets it
    queued_at: datetime


def _zone_spec(zone: Zone) -> ZoneSpec:
    shape = zone.shape
    return ZoneSpec(
        id=zone.id,
        kind=zone.kind,
        shape=(
            CircleShape(centre=shape.centre, radius_m=shape.radius_m)
            if isinstance(shape, CircleIn)
            else PolygonShape(ring=list(shape.coordinates[0]))
        ),
        buffer_m=zone.buffer_m,
        schedule=None
        if zone.schedule is None
        else [ScheduleWindow(days=list(w.days), start=w.start, end=w.end) for w in zone.schedule],
        grace_minutes=zone.grace_minutes,
    )


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


async def stage(conn: asyncpg.Connection, device_id: str, now: datetime) -> Staged | None:
    """Queue the device and build what tracking must know of it now (None if not visible)."""
    version = await repository.lock_device_config(conn, device_id)
    row = await repository.device_row(conn, device_id)
    if row is None:
        return None
    queued_at = await repository.queue(conn, device_id)
    if row.retired_at is not None:
        return Staged(device_id, version, None, queued_at)
    config = DeviceConfig(
        device_id=device_id, version=version, secret=row.secret_sealed, interval_s=row.reporting_interval_s
    )
    if row.order_id is not None and row.starts_at is not None and row.ends_at is not None:
        # Under an active order: what tracking evaluates the device's fixes against.
        config = msgspec.structs.replace(
            config,
            order_id=row.order_id,
            case_id=row.case_id,
            org_unit_id=row.org_unit_id,
            starts_at_ms=_ms(row.starts_at),
            ends_at_ms=_ms(row.ends_at),
            time_zone=row.time_zone or config.time_zone,
            zones=[_zone_spec(z) for z in await repository.zones(conn, row.order_id)],
        )
    return Staged(device_id, version, config, queued_at)


@dataclass(slots=True)
class TrackingLink:
    redis: RedisClient
    keyspace: KeySpace
    scripts: Scripts

    @classmethod
    def create(cls, redis: RedisClient, keyspace: KeySpace) -> TrackingLink:
        return cls(redis, keyspace, Scripts.register(redis))

    async def publish(self, pool: asyncpg.Pool, staged: list[Staged], now: datetime) -> int:
        """Publish after the commit; what fails stays queued for the outbox loop."""
        done = 0
        for item in staged:
            try:
                if item.config is None:
                    await remove_device(self.scripts, self.keyspace, item.device_id, item.version)
                else:
                    await publish_device(self.scripts, self.keyspace, item.config, now_ms=_ms(now))
            except (RedisError, OSError) as e:
                log.warning("tracking_publish_failed", device_id=item.device_id, error_type=type(e).__name__)
                continue
            async with pool.acquire() as conn:
                await repository.dequeue(conn, item.device_id, item.queued_at)  # type: ignore[arg-type]
            done += 1
        return done

    async def clear_condition(self, device_id: str, kind: str, zone_id: int | None = None) -> bool:
        """Close a condition only a person may close (strap_tamper, device_case_opened)."""
        keys = self.keyspace.device(device_id).all()
        return bool(await self.scripts.clear(keys=keys, args=[kind, "" if zone_id is None else zone_id]))

    async def drain_outbox(self, pool: asyncpg.Pool, now: datetime, *, older_than: timedelta) -> int:
        """Publish what earlier requests left queued, city by city as the system role."""
        async with pool.acquire() as conn:
            roots = await supervision.roots(conn)  # type: ignore[arg-type]
        published = 0
        for root_id, root_path in roots:
            while True:
                async with scoped_transaction(pool, system_principal(root_id, root_path)) as conn:
                    queued = await repository.queued(conn, now - older_than, _OUTBOX_BATCH)
                    staged = [s for d, _ in queued if (s := await stage(conn, d, now)) is not None]
                published += await self.publish(pool, staged, now)
                if len(queued) < _OUTBOX_BATCH or not staged:
                    break
        return published

    async def run_outbox_forever(self, pool: asyncpg.Pool, clock: Clock, *, every: timedelta) -> None:
        while True:
            try:
                count = await self.drain_outbox(pool, clock.now(), older_than=every)
                if count:
                    log.info("tracking_outbox_published", devices=count)
            except (OSError, asyncpg.PostgresError, RedisError) as e:
                log.warning("tracking_outbox_failed", error_type=type(e).__name__)
            await asyncio.sleep(every.total_seconds())
