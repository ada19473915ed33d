"""From the streams to PostgreSQL: the persister and the alert sink, through consumer groups,
idempotent when an entry is delivered twice, and taking over from a consumer that died."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from redis.asyncio import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from tracking.alert_sink import ALERT_GROUP, handle_alerts
from tracking.persister import PERSISTER_GROUP, Persister
from tracking.streams import StreamConsumer

from casemgr.config import Settings
from casemgr.db import create_pool
from tests.conftest import World
from tests.tracking.conftest import Device, Rig, now_ms
from tests.tracking.test_alerts import at, circle


@pytest.fixture
async def tracking_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """Connected as casemgr_tracking: it may add pings and alerts, and read nothing."""
    pool = await create_pool(settings.tracking_database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def monitored(rig: Rig, world: World) -> Device:
    return await rig.device(
        [circle(1, "exclusion")],
        order_id=world.orders["cc_o1"],
        case_id=world.cases["cc_o1"],
        org_unit_id=world.units["c1"].id,
    )


def persister(rig: Rig, pool: asyncpg.Pool, consumer: str = "p1", idle_ms: int = 30_000) -> StreamConsumer:
    return StreamConsumer(
        rig.redis,
        [s.pings for s in rig.keyspace.all_shards()],
        PERSISTER_GROUP,
        Persister(pool).handle,
        consumer=consumer,
        reclaim_idle_ms=idle_ms,
    )


async def test_pings_land_in_postgresql_once_even_when_delivered_twice(
    rig: Rig, world: World, tracking_pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    device = await monitored(rig, world)
    t0 = now_ms() - 600_000
    pings = [device.ping(t0 + i * 1000, *at(500)) for i in range(3)]
    pings.append(device.ping(t0 + 3000))  # no position
    pings.append(device.ping(t0 + 4000, *at(500), battery_percent=77, speed_mps=1.5))
    await rig.upload(device, pings)
    await rig.upload(device, pings[:2])  # duplicates: never queued
    consumer = persister(rig, tracking_pool)
    await consumer.ensure_groups()
    assert await consumer.run_once() == 1  # one stream entry holds the whole upload
    # The same entries once more, as after a crash between commit and acknowledgement.
    entries = [
        (b"0-1", fields)
        for _, fields in (await rig.redis.xrange(rig.keyspace.device(device.device_id).shard.pings))
    ]
    if entries:
        await consumer.handler(entries)
    rows = await owner.fetch(
        "SELECT seq, longitude IS NULL AS no_position, battery_percent, speed_mps, order_id, case_id "
        "FROM pings WHERE device_id = $1 ORDER BY seq",
        device.device_id,
    )
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["no_position"] for r in rows] == [False, False, False, True, False]
    assert (rows[4]["battery_percent"], rows[4]["speed_mps"]) == (77, 1.5)
    assert {(r["order_id"], r["case_id"]) for r in rows} == {(world.orders["cc_o1"], world.cases["cc_o1"])}


async def test_entries_a_dead_consumer_took_are_reclaimed_by_another_and_streams_are_trimmed(
    rig: Rig, world: World, tracking_pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    device = await monitored(rig, world)
    await rig.upload(device, device.ping(now_ms() - 5000, *at(900)))
    stream = rig.keyspace.device(device.device_id).shard.pings
    dead = persister(rig, tracking_pool, consumer="dead")
    await dead.ensure_groups()
    taken = await rig.redis.xreadgroup(PERSISTER_GROUP, "dead", {stream: ">"}, count=10)
    assert taken and len(taken[0][1]) == 1  # taken, never acknowledged: the consumer "died"
    survivor = persister(rig, tracking_pool, consumer="alive", idle_ms=0)
    assert await survivor.poll([stream]) == 1
    assert await owner.fetchval("SELECT count(*) FROM pings WHERE device_id = $1", device.device_id) == 1
    assert (await rig.redis.xpending(stream, PERSISTER_GROUP))["pending"] == 0
    survivor._trimmed_at = 0.0
    await survivor.poll([stream])
    assert await rig.redis.xlen(stream) == 0


async def test_alerts_reach_casemgr_once_with_ids_and_times_only_and_clears_are_recorded(
    rig: Rig, world: World, tracking_pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    device = await monitored(rig, world)
    t0 = now_ms() - 600_000
    for i, east in enumerate([0, 0, 600, 600]):
        await rig.upload(device, device.ping(t0 + i * 1000, *at(east)))
    sink = StreamConsumer(
        rig.redis,
        [s.alerts for s in rig.keyspace.all_shards()],
        ALERT_GROUP,
        lambda entries: handle_alerts(tracking_pool, entries),
    )
    await sink.ensure_groups()
    await sink.run_once()
    events = [
        (b"x", f) for _, f in await rig.redis.xrange(rig.keyspace.device(device.device_id).shard.alerts)
    ]
    await handle_alerts(tracking_pool, events)  # delivered twice: still one row per event
    rows = await owner.fetch(
        "SELECT kind, severity::text, org_unit_id, case_id, order_id, details, cleared_at, status::text "
        "FROM alerts WHERE order_id = $1 AND details ->> 'device_id' = $2 ORDER BY id",
        world.orders["cc_o1"],
        device.device_id,
    )
    assert [(r["kind"], r["severity"], r["status"]) for r in rows] == [
        ("exclusion_zone_entered", "critical", "new"),
        ("exclusion_zone_left", "info", "new"),
    ]
    entered = rows[0]
    assert (entered["org_unit_id"], entered["case_id"]) == (world.units["c1"].id, world.cases["cc_o1"])
    assert entered["cleared_at"] is not None  # the subject has left the zone
    details = entered["details"]
    assert "longitude" not in details and "latitude" not in details
    assert '"fixes": [1, 2]' in details


async def test_the_tracking_role_can_write_pings_and_alerts_but_read_nothing(
    tracking_pool: asyncpg.Pool, world: World
) -> None:
    async with tracking_pool.acquire() as conn:
        for table in ("pings", "alerts", "cases", "persons", "monitoring_orders", "zones", "devices"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT 1 FROM {table} LIMIT 1")


async def test_tracking_alerts_reach_the_officers_in_scope_and_nobody_else(
    rig: Rig,
    world: World,
    tracking_pool: asyncpg.Pool,
    client: httpx.AsyncClient,
    login_as: Any,
) -> None:
    device = await monitored(rig, world)
    await rig.upload(device, [device.ping(now_ms() - 2000, strap_state="cut"), device.ping(now_ms() - 1000)])
    events = [
        (b"x", f) for _, f in await rig.redis.xrange(rig.keyspace.device(device.device_id).shard.alerts)
    ]
    await handle_alerts(tracking_pool, events)
    seen = await client.get("/alerts", params={"kind": "strap_tamper"}, headers=await login_as("off1"))
    assert seen.status_code == 200
    mine = [a for a in seen.json()["items"] if a["details"].get("device_id") == device.device_id]
    assert [(a["kind"], a["severity"]) for a in mine] == [("strap_tamper", "critical")]
    assert mine[0]["details"]["device_id"] == device.device_id
    other = await client.get("/alerts", params={"kind": "strap_tamper"}, headers=await login_as("sup_d2"))
    assert world.cases["cc_o1"] not in [a["case_id"] for a in other.json()["items"]]


async def test_an_idle_alert_sink_takes_an_alert_the_moment_it_arrives_on_one_redis(
    rig: Rig, world: World, tracking_pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    """On one Redis an idle sink waits inside a blocking read over every shard and is woken by
    the alert itself: its wait here is a minute, and the alert is handled long before. On a
    Redis Cluster (which refuses a read over several slots) it waits idle_poll_s and sweeps."""
    device = await monitored(rig, world)
    sink = StreamConsumer(
        rig.redis,
        [s.alerts for s in rig.keyspace.all_shards()],
        ALERT_GROUP,
        lambda entries: handle_alerts(tracking_pool, entries),
        idle_wait_s=60.0,
        idle_poll_s=0.01,
    )
    await sink.ensure_groups()
    assert await sink.run_once() == 0
    if isinstance(rig.redis, RedisCluster):
        assert await sink.wait() == 0
        await rig.upload(device, device.ping(now_ms() - 1000, strap_state="cut"))
        assert await sink.run_once() == 1
    else:
        waiting = asyncio.create_task(sink.wait())
        # Until Redis shows the sink blocked in its read (its state, not this process's).
        async with asyncio.timeout(30):
            while not any(c["cmd"] == "xreadgroup" for c in await rig.redis.client_list()):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await rig.upload(device, device.ping(now_ms() - 1000, strap_state="cut"))
        assert await asyncio.wait_for(waiting, timeout=30) == 1
    kinds = await owner.fetch("SELECT kind FROM alerts WHERE details ->> 'device_id' = $1", device.device_id)
    assert [r["kind"] for r in kinds] == ["strap_tamper"]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (RedisConnectionError("Connection closed by server."), "Connection closed by server."),
        (ValueError("row (121.4711, 31.2301) refused"), None),
    ],
)
async def test_a_failed_sweep_logs_why_when_redis_or_the_network_said_so_and_never_a_rows_values(
    rig: Rig, failure: Exception, reason: str | None
) -> None:
    """An operator reads why the persister stopped: the client's words about Redis or the
    network. Any other error's text may quote a ping, so only its type is logged."""
    device = await rig.device()
    await rig.upload(device, device.ping(now_ms() - 1000, *at(0)))

    async def refuse(entries: list[Any]) -> None:
        raise failure

    consumer = StreamConsumer(
        rig.redis, [s.pings for s in rig.keyspace.all_shards()], PERSISTER_GROUP, refuse, consumer="p1"
    )
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(consumer.run_forever())
        for _ in range(100):
            if logs:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert logs[0] == {
        "event": "stream_consumer_failed",
        "log_level": "warning",
        "group": PERSISTER_GROUP,
        "error_type": type(failure).__name__,
        "reason": reason,
    }
