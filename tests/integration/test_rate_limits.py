"""Rate limits per account, per source address and per device, shared by every worker through
Redis: past a limit the answer is 429 with Retry-After, whichever worker is asked."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from casemgr.app import create_app
from casemgr.config import Settings
from casemgr.ratelimit import ApiLimits, Limit, RateLimiter
from casemgr.resources import Resources
from tests.conftest import World, make_settings


def address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def limited(resources: Resources, settings: Settings) -> Resources:
    """The resources of a worker with these limits, counting under a namespace of the test's own."""
    return dataclasses.replace(
        resources,
        rate_limiter=RateLimiter(resources.redis, namespace=f"rl{uuid.uuid4().hex[:8]}"),
        api_limits=ApiLimits.from_settings(settings),
    )


@pytest.fixture
def workers(
    resources: Resources, database_url: str
) -> Callable[..., AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]]:
    """Two workers of one deployment (two apps, one Redis), each reached from `client_address`."""

    def make(
        client_address: str, **limits: str
    ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
        settings = make_settings(database_url, **limits)
        shared = limited(resources, settings)

        async def both() -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
            clients = [
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(
                        app=create_app(settings, resources=shared), client=(client_address, 40000)
                    ),
                    base_url="http://casemgr.test",
                )
                for _ in range(2)
            ]
            try:
                yield clients[0], clients[1]
            finally:
                for client in clients:
                    await client.aclose()

        return both()

    return make


async def test_an_account_past_its_limit_gets_429_from_every_worker_and_another_account_does_not(
    workers, world: World, login_as
) -> None:  # type: ignore[no-untyped-def]
    async for first, second in workers(address(), CASEMGR_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE="4"):
        officer = await login_as("off1")
        other = await login_as("off2")
        for client in (first, second, first, second):
            assert (await client.get("/auth/me", headers=officer)).status_code == 200
        refused = await second.get("/auth/me", headers=officer)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.json()["type"] == "urn:casemgr:problem:too_many_requests"
        assert (await first.get("/auth/me", headers=officer)).status_code == 429
        assert (await first.get("/auth/me", headers=other)).status_code == 200


async def test_an_address_past_its_limit_gets_429_even_without_a_session(
    workers, world: World, login_as
) -> None:  # type: ignore[no-untyped-def]
    async for first, second in workers(address(), CASEMGR_RATE_LIMIT_PER_ADDRESS_PER_MINUTE="3"):
        officer = await login_as("off1")
        assert (await first.get("/auth/me", headers=officer)).status_code == 200
        assert (await second.get("/auth/me")).status_code == 401  # no session: counted all the same
        assert (await first.get("/auth/me", headers=officer)).status_code == 200
        assert (await second.get("/auth/me", headers=officer)).status_code == 429
        # Health probes are never limited: a load balancer must still see the worker.
        assert (await first.get("/health/live")).status_code == 200
    async for other_place, _ in workers(address(), CASEMGR_RATE_LIMIT_PER_ADDRESS_PER_MINUTE="3"):
        assert (await other_place.get("/auth/me", headers=officer)).status_code == 200


async def test_login_attempts_from_one_address_are_limited_before_any_password_is_checked(
    workers, world: World
) -> None:  # type: ignore[no-untyped-def]
    async for first, second in workers(address(), CASEMGR_RATE_LIMIT_LOGINS_PER_ADDRESS_PER_MINUTE="2"):
        guess = {"username": world.accounts["off1"].username, "password": "not-the-password"}
        assert (await first.post("/auth/login", json=guess)).status_code == 401
        assert (await second.post("/auth/login", json=guess)).status_code == 401
        refused = await first.post("/auth/login", json=guess)
        assert refused.status_code == 429
        assert "Retry-After" in refused.headers


async def test_a_limit_of_zero_counts_nothing(resources: Resources) -> None:
    limiter = RateLimiter(resources.redis, namespace=f"rl{uuid.uuid4().hex[:8]}")
    for _ in range(50):
        await limiter.hit((Limit("anything", 0), "someone"))
    assert await resources.redis.exists(limiter.key(Limit("anything", 0), "someone")) == 0
