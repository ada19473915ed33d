"""Liveness and readiness probes for process managers and load balancers."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import get

from casemgr.errors import ServiceUnavailable
from casemgr.web.access import AnyRequest, public, resources_of

_PROBE_TIMEOUT = 2.0


class Health(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: str
    postgres: str | None = None
    redis: str | None = None


@get("/health/live", opt=public("health.live"), tags=["health"])
async def live() -> Health:
    """The process is up and serving; says nothing about its dependencies."""
    return Health(status="ok")


async def _postgres_ok(request: AnyRequest) -> bool:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            async with resources_of(request).pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        return True
    except Exception:
        return False


async def _redis_ok(request: AnyRequest) -> bool:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            return bool(await resources_of(request).redis.ping())
    except Exception:
        return False


@get("/health/ready", opt=public("health.ready"), tags=["health"])
async def ready(request: AnyRequest) -> Health:
    """Ready only while both PostgreSQL and Redis answer; a 503 problem names which does not."""
    pg, rd = await asyncio.gather(_postgres_ok(request), _redis_ok(request))
    if not (pg and rd):
        down = [name for name, ok in (("postgres", pg), ("redis", rd)) if not ok]
        raise ServiceUnavailable(f"not ready: {' and '.join(down)} unreachable")
    return Health(status="ok", postgres="ok", redis="ok")
