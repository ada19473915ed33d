"""Ingest under pressure: past the queue's bound it answers 503, past a device's uploads per
minute 429, both with Retry-After; what it refused is not taken, so the device's resend counts.
An address that keeps failing to authenticate is closed for the rest of the minute."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from tracking.app import create_app
from tracking.ingest import Ingest

from casemgr.config import Settings
from casemgr.ratelimit import Limit, RateLimiter
from tests.tracking.conftest import KEYRING, Device, Rig, now_ms

POSITION = {"longitude": 121.47, "latitude": 31.23, "accuracy_m": 8.0}


def ingest_with(rig: Rig, **options: Any) -> Ingest:
    return Ingest(redis=rig.redis, scripts=rig.scripts, keyring=KEYRING, keyspace=rig.keyspace, **options)


def client_for(rig: Rig, settings: Settings, ingest: Ingest) -> httpx.AsyncClient:
    app = create_app(settings, redis=rig.redis)
    app.state.redis = rig.redis
    app.state.ingest = ingest
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tracking")


@pytest.fixture
async def bounded(rig: Rig, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(rig, settings, ingest_with(rig, max_backlog=2, backlog_refresh_s=0)) as client:
        yield client


@pytest.fixture
async def limited(rig: Rig, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(rig, settings, ingest_with(rig, device_uploads_per_minute=3)) as client:
        yield client


async def send(client: httpx.AsyncClient, device: Device, ping: dict[str, object]) -> httpx.Response:
    return await client.post(
        "/v1/pings",
        content=msgspec.json.encode(ping),
        headers={
            "X-Device-Id": device.device_id,
            "Authorization": f"Bearer {device.secret}",
            "Content-Type": "application/json",
        },
    )


async def test_past_the_backlog_bound_uploads_get_503_with_retry_after_and_the_resend_counts_once_drained(
    rig: Rig, bounded: httpx.AsyncClient
) -> None:
    device = await rig.device()
    t = now_ms() - 60_000
    pings = [device.ping(t + i * 1000, **POSITION) for i in range(3)]
    for ping in pings[:2]:
        assert (await send(bounded, device, ping)).status_code == 202
    refused = await send(bounded, device, pings[2])
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert "send them again" in refused.json()["detail"]
    assert len(await rig.pings_queued()) == 2  # the refused upload left nothing behind
    # The persister catches up (its acknowledged entries are trimmed): the device resends.
    stream = rig.keyspace.device(device.device_id).shard.pings
    await rig.redis.xtrim(stream, maxlen=0)
    resent = await send(bounded, device, pings[2])
    assert resent.status_code == 202
    assert resent.json() == {"accepted": 1, "duplicate": 0, "rejected": []}


async def test_a_device_past_its_uploads_per_minute_gets_429_with_the_wait_and_nothing_is_taken(
    rig: Rig, limited: httpx.AsyncClient
) -> None:
    device, other = await rig.device(), await rig.device()
    if 60_000 - now_ms() % 60_000 < 2_000:  # the count is per minute of the clock: start clear of its turn
        await asyncio.sleep(2.5)
    t = now_ms() - 60_000
    for i in range(3):
        assert (await send(limited, device, device.ping(t + i * 1000, **POSITION))).status_code == 202
    refused = await send(limited, device, device.ping(t + 3000, **POSITION))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["type"] == "urn:casemgr:problem:too_many_requests"
    queued = [d for d, _ in await rig.pings_queued() if d == device.device_id]
    assert len(queued) == 3
    # The limit is the device's own: another device of the fleet is not held back.
    assert (await send(limited, other, other.ping(t, **POSITION))).status_code == 202


async def test_refused_authentications_from_one_address_close_it_on_every_worker_for_the_minute(
    rig: Rig, settings: Settings
) -> None:
    limiter = RateLimiter(rig.redis, namespace=f"rl{uuid.uuid4().hex[:8]}")
    limit = Limit("failed-device-auth-per-address", 3)

    def worker(address: str) -> httpx.AsyncClient:
        ingest = ingest_with(rig, rate_limiter=limiter, failed_auth_limit=limit)
        app = create_app(settings, redis=rig.redis)
        app.state.redis, app.state.ingest = rig.redis, ingest
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(address, 50000)), base_url="http://tracking"
        )

    device = await rig.device()
    guessed = Device(device.device_id, "a-guessed-secret", device.config)
    t = now_ms() - 60_000
    async with worker("10.1.2.3") as first, worker("10.1.2.3") as second, worker("10.9.9.9") as elsewhere:
        for client in (first, second, first):
            assert (await send(client, guessed, guessed.ping(t, **POSITION))).status_code == 401
        refused = await send(second, guessed, guessed.ping(t, **POSITION))
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # The address is closed on that worker, even to the right secret; the device elsewhere is not.
        assert (await send(second, device, device.ping(t, **POSITION))).status_code == 429
        assert (await send(elsewhere, device, device.ping(t + 1000, **POSITION))).status_code == 202
