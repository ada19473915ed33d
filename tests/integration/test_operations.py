"""Health probes and the OpenAPI schema."""

from __future__ import annotations

import asyncpg
import httpx
from redis.asyncio import Redis

from casemgr.app import create_app
from casemgr.config import Settings
from casemgr.db import create_pool
from casemgr.resources import Resources


async def test_liveness_and_readiness_answer_when_all_is_well(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}


async def _ready_with(
    settings: Settings, resources: Resources, *, pool: asyncpg.Pool | None = None, redis: Redis | None = None
) -> httpx.Response:
    broken = Resources.assemble(
        settings, pool=pool or resources.pool, redis=redis or resources.redis, clock=resources.clock
    )
    app = create_app(settings, resources=broken)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get("/health/ready")


async def test_readiness_fails_while_redis_is_unreachable(settings: Settings, resources: Resources) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        response = await _ready_with(settings, resources, redis=dead)
    finally:
        await dead.aclose()
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "redis" in response.json()["detail"] and "postgres" not in response.json()["detail"]


async def test_readiness_fails_while_postgres_is_unreachable(
    settings: Settings, resources: Resources
) -> None:
    dead = await create_pool("postgresql://casemgr_app@127.0.0.1:1/none", min_size=0, max_size=1)
    try:
        response = await _ready_with(settings, resources, pool=dead)
    finally:
        await dead.close()
    assert response.status_code == 503
    assert "postgres" in response.json()["detail"]


async def test_the_openapi_schema_is_served_and_lists_the_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/auth/login", "/cases/{case_id}", "/accounts", "/org-units", "/audit"} <= set(paths)


async def test_a_request_while_redis_is_down_is_a_503_problem_not_a_500(
    settings: Settings, resources: Resources
) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    broken = Resources.assemble(settings, pool=resources.pool, redis=dead, clock=resources.clock)
    app = create_app(settings, resources=broken)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.get("/cases", headers={"Authorization": "Bearer whatever"})
    finally:
        await dead.aclose()
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "5"
