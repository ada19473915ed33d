"""The tracking tests run twice: against the shared single Redis and against a private
three-primary Redis Cluster started on loopback ports for the session. Each test works in its
own key namespace, so tests never see each other's devices, streams or deadlines."""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis.asyncio import RedisCluster
from tracking.contract import DeviceConfig, Thresholds, ZoneSpec, secret_associated_data
from tracking.ingest import Ingest
from tracking.keys import KeySpace
from tracking.publishing import publish_device
from tracking.script_pipe import ScriptPipe
from tracking.scripts import Scripts
from tracking.wire import IngestReply

from casemgr.config import DataKey
from casemgr.crypto import Keyring
from casemgr.redis_client import RedisClient, create_redis
from tests.conftest import REDIS_URL
from tests.servers import redis_cluster

KEYRING = Keyring((DataKey(key_id="t1", key=b"k" * 32),))
_versions = itertools.count(1)


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_cluster(Path(tmp_path_factory.mktemp("tracking-cluster"))) as url:
        yield url


@pytest.fixture(params=["single", "cluster"])
async def tracking_redis(request: pytest.FixtureRequest) -> AsyncIterator[RedisClient]:
    if request.param == "single":
        client = create_redis(REDIS_URL)
    else:
        client = create_redis(request.getfixturevalue("cluster_url"), cluster=True)
    yield client
    await client.aclose()


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).isoformat()


@dataclass
class Device:
    device_id: str
    secret: str
    config: DeviceConfig
    seq: int = 0

    def ping(
        self, t_ms: int, lon: float | None = None, lat: float | None = None, **extra: Any
    ) -> dict[str, Any]:
        """The next ping in sequence; a position comes with 5 m accuracy unless told."""
        self.seq += 1
        body: dict[str, Any] = {"device_id": self.device_id, "seq": self.seq, "fix_time": iso(t_ms)}
        if lon is not None:
            body |= {"longitude": lon, "latitude": lat, "accuracy_m": 5.0}
        return body | extra


@dataclass(repr=False)
class Rig:
    """A tracking core in its own namespace: publish devices, upload, read what came out."""

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return f"Rig(namespace={self.keyspace.namespace!r})"

    redis: RedisClient
    keyspace: KeySpace
    scripts: Scripts
    ingest: Ingest
    devices: list[Device] = field(default_factory=list)

    async def device(
        self,
        zones: list[ZoneSpec] | None = None,
        *,
        interval_s: int = 60,
        thresholds: Thresholds | None = None,
        order_id: int | None = 100,
        case_id: int | None = None,
        org_unit_id: int | None = None,
        starts_at_ms: int | None = None,
        ends_at_ms: int | None = None,
        time_zone: str = "Asia/Shanghai",
    ) -> Device:
        device_id = f"dev-{uuid.uuid4().hex[:12]}"
        secret = secrets.token_urlsafe(32)
        config = DeviceConfig(
            device_id=device_id,
            version=next(_versions),
            secret=KEYRING.seal(secret.encode(), secret_associated_data(device_id)),
            interval_s=interval_s,
            order_id=order_id,
            case_id=case_id or (None if order_id is None else order_id + 1000),
            org_unit_id=org_unit_id or (None if order_id is None else 7),
            starts_at_ms=starts_at_ms if starts_at_ms is not None else now_ms() - 6 * 3600_000,
            ends_at_ms=ends_at_ms if ends_at_ms is not None else now_ms() + 30 * 86400_000,
            time_zone=time_zone,
            zones=zones or [],
            thresholds=thresholds or Thresholds(),
        )
        device = Device(device_id, secret, config)
        await self.publish(device)
        self.devices.append(device)
        return device

    async def publish(self, device: Device, **changes: Any) -> None:
        device.config = msgspec.structs.replace(device.config, version=next(_versions), **changes)
        assert await publish_device(self.scripts, self.keyspace, device.config, now_ms=now_ms())

    async def upload(self, device: Device, pings: list[dict[str, Any]] | dict[str, Any]) -> IngestReply:
        return await self.ingest.upload(
            device_id=device.device_id,
            authorization=f"Bearer {device.secret}",
            signature=None,
            content_type="application/json",
            body=msgspec.json.encode(pings),
        )

    async def alerts(self, device: Device | None = None) -> list[dict[str, str]]:
        """Every alert event on the alert streams, oldest first (per shard)."""
        events = []
        for shard in self.keyspace.all_shards():
            for _, fields in await self.redis.xrange(shard.alerts):
                event = {k.decode(): v.decode() for k, v in fields.items()}
                if device is None or event["dev"] == device.device_id:
                    events.append(event)
        return events

    async def raised(self, device: Device) -> list[str]:
        return [e["kind"] for e in await self.alerts(device) if e["act"] == "raise"]

    async def pings_queued(self) -> list[tuple[str, list[list[Any]]]]:
        out = []
        for shard in self.keyspace.all_shards():
            for _, fields in await self.redis.xrange(shard.pings):
                out.append((fields[b"dev"].decode(), msgspec.msgpack.decode(fields[b"d"])))
        return out


@pytest.fixture
async def rig(tracking_redis: RedisClient) -> AsyncIterator[Rig]:
    keyspace = KeySpace(shards=4, namespace=f"t{uuid.uuid4().hex[:8]}")
    scripts = Scripts.register(tracking_redis)
    # As in production: on a single server the ingest script goes through the pipelined channel.
    pipe = None if isinstance(tracking_redis, RedisCluster) else ScriptPipe(REDIS_URL)
    ingest = Ingest(redis=tracking_redis, scripts=scripts, keyring=KEYRING, keyspace=keyspace, pipe=pipe)
    yield Rig(tracking_redis, keyspace, scripts, ingest)
    if pipe is not None:
        pipe.close()
    async for key in tracking_redis.scan_iter(match=f"{keyspace.namespace}:*", count=1000):
        await tracking_redis.delete(key)  # leave the shared Redis as we found it
