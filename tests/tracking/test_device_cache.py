"""Each ingest worker's cache of compiled device configurations: loaded at start, bounded,
and the readiness probe that waits for it."""

from __future__ import annotations

import asyncio

import httpx
import msgspec
from tracking.app import create_app
from tracking.ingest import Ingest

from casemgr.config import Settings
from tests.tracking.conftest import KEYRING, Rig, now_ms


def fresh_ingest(rig: Rig, cache_size: int) -> Ingest:
    return Ingest(
        redis=rig.redis, scripts=rig.scripts, keyring=KEYRING, keyspace=rig.keyspace, cache_size=cache_size
    )


async def test_preload_compiles_every_published_device_up_to_the_cache_size(rig: Rig) -> None:
    devices = [await rig.device() for _ in range(3)]
    everything = fresh_ingest(rig, cache_size=10)
    assert await everything.preload(chunk=2) == 3
    assert set(everything._cache.devices()) == {d.device_id for d in devices}
    cached = everything._cache.get(devices[0].device_id)
    assert cached is not None and cached.device.version == devices[0].config.version
    assert everything._cache.untracked()

    bounded = fresh_ingest(rig, cache_size=2)
    assert await bounded.preload(chunk=1) == 2
    assert len(bounded._cache) == 2


async def test_a_full_cache_drops_its_oldest_device_and_serves_it_again_later(rig: Rig) -> None:
    first, second, third = [await rig.device() for _ in range(3)]
    ingest = fresh_ingest(rig, cache_size=2)
    for device in (first, second, third, first):
        reply = await ingest.upload(
            device_id=device.device_id,
            authorization=f"Bearer {device.secret}",
            signature=None,
            content_type="application/json",
            body=msgspec.json.encode(device.ping(now_ms() - 1000, 121.47, 31.23)),
        )
        assert reply.accepted == 1
    assert ingest._cache.devices() == [third.device_id, first.device_id]


async def test_readiness_fails_until_the_configurations_are_loaded(rig: Rig, settings: Settings) -> None:
    app = create_app(settings, redis=rig.redis)
    app.state.redis = rig.redis
    app.state.preloaded = asyncio.Event()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        warming = await client.get("/health/ready")
        assert warming.status_code == 503
        assert warming.headers["Retry-After"] == "5"
        assert "loading device configurations" in warming.json()["detail"]
        app.state.preloaded.set()
        assert (await client.get("/health/ready")).status_code == 200
