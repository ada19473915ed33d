"""The long-lived parts a running service holds: pools, clients and the objects built on them.

Built once per process by the application's lifespan, or by a test on its own event loop
and handed to ``create_app`` (Litestar's test client would otherwise run the app on another
loop than the test's pool).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from tracking.keys import KeySpace

from casemgr.alerts.feed import AlertFeed
from casemgr.auth.passwords import Passwords
from casemgr.auth.sessions import SessionStore
from casemgr.clock import Clock, SystemClock
from casemgr.config import Settings
from casemgr.crypto import Keyring
from casemgr.db import create_pool
from casemgr.monitoring.publisher import TrackingLink
from casemgr.ratelimit import ApiLimits, RateLimiter
from casemgr.redis_client import RedisClient, create_redis


@dataclass(slots=True)
class Resources:
    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    redis: RedisClient
    sessions: SessionStore
    passwords: Passwords
    keyring: Keyring
    # Publishes device configurations to the tracking core's Redis keys.
    tracking: TrackingLink
    # Wakes the live alert streams of this process.
    alert_feed: AlertFeed
    rate_limiter: RateLimiter
    api_limits: ApiLimits

    @classmethod
    def assemble(
        cls, settings: Settings, *, pool: asyncpg.Pool, redis: RedisClient, clock: Clock | None = None
    ) -> Resources:
        """Build the service objects on a pool and a Redis client opened elsewhere."""
        clock = clock or SystemClock()
        return cls(
            settings=settings,
            clock=clock,
            pool=pool,
            redis=redis,
            sessions=SessionStore(
                redis,
                clock,
                idle_seconds=settings.session_idle_seconds,
                absolute_seconds=settings.session_absolute_seconds,
                pending_seconds=settings.pending_session_seconds,
            ),
            passwords=Passwords(
                time_cost=settings.argon2_time_cost,
                memory_kib=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            ),
            keyring=Keyring(settings.data_keys),
            alert_feed=AlertFeed(settings.app_database_url),
            tracking=TrackingLink.create(
                redis, KeySpace(settings.tracking_shards, settings.tracking_namespace)
            ),
            rate_limiter=RateLimiter(redis),
            api_limits=ApiLimits.from_settings(settings),
        )

    @classmethod
    async def open(cls, settings: Settings, clock: Clock | None = None) -> Resources:
        pool = await create_pool(
            settings.app_database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        redis = create_redis(settings.redis_url, cluster=settings.redis_cluster)
        return cls.assemble(settings, pool=pool, redis=redis, clock=clock)

    async def close(self) -> None:
        await self.alert_feed.close()
        await self.pool.close()
        await self.redis.aclose()
