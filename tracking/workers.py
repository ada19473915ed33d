"""The tracking core's background work in one process: the watchdog, the persister and the
alert sink. Run as many of these processes as needed: consumer groups share the streams
between them, and the watchdog's leases keep two of them from raising the same deadline."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from casemgr.config import Settings
from casemgr.db import create_pool
from casemgr.redis_client import create_redis
from tracking.alert_sink import ALERT_GROUP, handle_alerts
from tracking.keys import KeySpace
from tracking.persister import PERSISTER_GROUP, Persister
from tracking.scripts import Scripts
from tracking.streams import StreamConsumer
from tracking.watchdog import Watchdog

log = structlog.get_logger(__name__)


async def run_workers(settings: Settings) -> None:
    redis = create_redis(settings.redis_url, cluster=settings.redis_cluster)
    pool = await create_pool(settings.tracking_database_url, min_size=1, max_size=4)
    keyspace = KeySpace(settings.tracking_shards, settings.tracking_namespace)
    scripts = Scripts.register(redis)
    reclaim_idle_ms = settings.tracking_reclaim_idle_seconds * 1000
    persister = StreamConsumer(
        redis,
        [s.pings for s in keyspace.all_shards()],
        PERSISTER_GROUP,
        Persister(pool).handle,
        reclaim_idle_ms=reclaim_idle_ms,
    )

    async def sink(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        await handle_alerts(pool, entries)

    alerts = StreamConsumer(
        redis, [s.alerts for s in keyspace.all_shards()], ALERT_GROUP, sink, reclaim_idle_ms=reclaim_idle_ms
    )
    watchdog = Watchdog(redis, scripts, keyspace)
    tasks = [
        asyncio.create_task(persister.run_forever(), name="persister"),
        asyncio.create_task(alerts.run_forever(), name="alert-sink"),
        asyncio.create_task(watchdog.run_forever(), name="watchdog"),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("tracking_workers_started", shards=settings.tracking_shards)
    try:
        await stop.wait()
    finally:
        # A batch being written is cancelled before its acknowledgement: it is delivered again.
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()
        await redis.aclose()
        log.info("tracking_workers_stopped")
