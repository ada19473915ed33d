"""Benchmark: the tracking core's ping ingest, beside the machine's limit and a peer design.

In one run, every server up at once and served the same way (casemgr.serving: --workers
uvicorn processes, uvloop, httptools, a SO_REUSEPORT socket each), measured in --rounds
rounds that take each server in turn (every other round in the reverse order), so that the drift
of a shared machine falls on all. A target that compares two servers is judged on their ratio
within each round, the median round's (`paired`): the rounds of one run on a shared VM have
differed by a third, more than the margins judged.
  1. the limit: an empty Litestar POST handler (bench/empty_app.py) under single-ping requests;
  2. the tracking service under single-ping requests: at least 60 % of the limit's rate (single
     pings at each --connections, 64 and 256 by default: each server's rate is its best, a
     capacity, which 64 connections do not reach for a service that waits on Redis);
  3. the tracking service under batches of --batch pings: at least 100,000 pings/s, load
     generator included (wrk, a thread per core, on the same cores);
  4. with --peer, the peer (bench/postgis_peer.py: each ping inserted into PostgreSQL with
     PostGIS and the zones checked in SQL) under the same single pings and batches;
  5. with --scale N (repeatable), a tracking service holding N subjects (e.g. 1,000,000),
     measured in the same rounds: its rates within 10 % of those with --subjects. Each fleet
     lives in a Redis of its own (harness.start_redis), as each would in production: the
     million's keyspace costs what it costs the million, not the thousand as well;
  6. Redis memory per monitored subject, and the ingest workers' resident memory;
  7. the persister: how fast the real persister drains everything the rounds queued into a
     freshly migrated PostgreSQL database (pings/s);
  8. at half the single-ping maximum, with a persister running: a paced client (PACED_PROCESSES
     processes) sends pings, some with the strap cut; the time from sending such a ping to its
     alert's entry on the alert stream (the stream id is Redis's clock) is taken, p99 at most
     250 ms; and the persister's lag, the age of the oldest queued ping not yet in PostgreSQL,
     sampled.
Subjects are published first, each with --zones zones (bench/fleet.py); each tracking server
loads every configuration before it reports ready, as in production; every subject then settles
(harness.settle) and every measured phase starts on an idle machine (harness.quiet). A figure
with any refused upload is marked INVALID instead of judged, and so is the ping-to-alert figure
when the paced client fell more than 5 % short of the rate asked.

    .venv/bin/python bench/tracking_ingest.py                       # 1,000 subjects, ~3 minutes
    .venv/bin/python bench/tracking_ingest.py --scale 1000000       # and 1,000,000: ~9 minutes more
    .venv/bin/python bench/tracking_ingest.py --peer                # and the PostGIS peer

Needs wrk (Debian package "wrk"), redis-server, the PostgreSQL of scripts/lib.sh (DATABASE_URL,
or the local one) and, for --peer, PostGIS in that PostgreSQL; with --shared-redis every fleet
goes into the Redis of REDIS_URL (or the local one) instead. bench/run installs
all of them. Traffic stays on 127.0.0.1; every phase ends after --seconds. Results go to
bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import platform
import random
import re
import shutil
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import msgspec
import postgis_peer
from fleet import DATA_KEY, ROOT, SECRET_SALT, device_id_of, home_of, publish, secret_of, subject
from harness import (
    SETTLING_UPLOADS,
    RedisServer,
    create_database,
    free_port,
    quiet,
    settle,
    start,
    start_redis,
    stop,
    stop_redis,
    wrk,
)
from redis.asyncio import Redis
from reporting import facts, largest_rss_mb, machine, percentile, write_results
from tracking.contract import CircleShape
from tracking.keys import KeySpace
from tracking.persister import PERSISTER_GROUP, Persister
from tracking.streams import StreamConsumer

from casemgr.config import TRACKING_DB_ROLE, app_url_from_owner_url
from casemgr.db import create_pool
from casemgr.migrate import apply_migrations

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SHARDS = 64


async def persist_backlog(redis: Redis, keyspace: KeySpace, dsn: str) -> dict[str, float]:
    """Drain every ping stream of the fleet into PostgreSQL with the real persister."""
    pool = await create_pool(app_url_from_owner_url(dsn, TRACKING_DB_ROLE), min_size=1, max_size=2)
    consumer = StreamConsumer(
        redis, [s.pings for s in keyspace.all_shards()], PERSISTER_GROUP, Persister(pool).handle
    )
    await consumer.ensure_groups()
    started = time.perf_counter()
    while await consumer.run_once():
        pass
    seconds = time.perf_counter() - started
    await pool.close()
    owner = await asyncpg.connect(dsn)
    rows = await owner.fetchval("SELECT count(*) FROM pings")
    await owner.close()
    return {"rows": rows, "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds)}


def run_persister(namespace: str, dsn: str, redis_url: str) -> None:
    """A persister in a process of its own, as `casemgr tracking workers` runs it, until killed."""

    async def persist_forever() -> None:
        redis = Redis.from_url(redis_url)
        pool = await create_pool(app_url_from_owner_url(dsn, TRACKING_DB_ROLE), min_size=1, max_size=2)
        keyspace = KeySpace(SHARDS, namespace)
        consumer = StreamConsumer(
            redis, [s.pings for s in keyspace.all_shards()], PERSISTER_GROUP, Persister(pool).handle
        )
        await consumer.run_forever()

    asyncio.run(persist_forever())


async def persister_lag_ms(redis: Redis, keyspace: KeySpace) -> float:
    """The age of the oldest ping queued and not yet acknowledged by the persister: pending
    (delivered, being written) or not yet delivered, over every shard; 0 when none is waiting."""
    shards = keyspace.all_shards()
    pipe = redis.pipeline(transaction=False)
    for shard in shards:
        pipe.xpending(shard.pings, PERSISTER_GROUP)
        pipe.xinfo_groups(shard.pings)
    replies = await pipe.execute()
    oldest: list[int] = []
    undelivered = redis.pipeline(transaction=False)
    for shard, pending, groups in zip(shards, replies[::2], replies[1::2], strict=True):
        if pending["pending"]:
            oldest.append(int(pending["min"].split(b"-")[0]))
        group = next(g for g in groups if g["name"] == PERSISTER_GROUP.encode())
        if group.get("lag"):
            undelivered.xrange(shard.pings, min=b"(" + group["last-delivered-id"], count=1)
    for entries in await undelivered.execute():
        if entries:
            oldest.append(int(entries[0][0].split(b"-")[0]))
    return max(0.0, time.time() * 1000 - min(oldest)) if oldest else 0.0


async def memory_per_subject(redis: Redis, keyspace: KeySpace, subjects: int, port: int) -> dict[str, float]:
    """MEMORY USAGE of a sample of subjects' own keys (configuration, state, duplicate bitmap).
    Each sampled subject first uploads a ping through the service, so that its state exists, as
    every subject's does in a fleet that reports (in a short run most of a million have not)."""
    sample = random.Random(1).sample(range(subjects), min(500, subjects))
    await upload_one_ping_each(port, sample)
    config = state = 0
    for n in sample:
        keys = keyspace.device(f"B{n:07d}")
        config += (await redis.memory_usage(keys.config) or 0) + (await redis.memory_usage(keys.blob) or 0)
        state += (await redis.memory_usage(keys.state) or 0) + (await redis.memory_usage(keys.seen) or 0)
    return {"config_bytes": config / len(sample), "state_bytes": state / len(sample)}


async def upload_one_ping_each(port: int, subjects: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    fix_time = datetime.now(UTC).isoformat()
    try:
        for n in subjects:
            lon, lat = home_of(n)
            body = msgspec.json.encode(
                {
                    "device_id": device_id_of(n),
                    "seq": 10**9,
                    "fix_time": fix_time,
                    "latitude": lat,
                    "longitude": lon,
                    "accuracy_m": 8.0,
                    "battery_percent": 80,
                }
            )
            writer.write(
                f"POST /v1/pings HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                f"X-Device-Id: {device_id_of(n)}\r\nAuthorization: Bearer {secret_of(n)}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head.lower())[1])  # type: ignore[index]
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 202"):
                raise RuntimeError(f"a memory sample's ping was refused: {head[:40]!r}")
    finally:
        writer.close()


async def with_redis(work, url: str = REDIS_URL):  # type: ignore[no-untyped-def]
    """`work(redis)` with a client of the Redis at `url` (the run's shared one by default), closed
    afterwards."""
    redis = Redis.from_url(url)
    try:
        return await work(redis)
    finally:
        await redis.aclose()


async def drop_namespace(redis: Redis, namespace: str) -> None:
    batch = []
    async for key in redis.scan_iter(match=f"{namespace}:*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            await redis.unlink(*batch)
            batch = []
    if batch:
        await redis.unlink(*batch)


# The paced client runs in this many processes, each with its share of the rate, connections
# and devices: one Python process could not send more than about 8,000 paced pings a second
# beside the server on two cores (8,133 of 9,204 asked for, bench/run of 2026-11-27, 14th run).
PACED_PROCESSES = 2


async def paced_latency(
    port: int,
    subjects: int,
    rate: float,
    seconds: float,
    redis: Redis,
    keyspace: KeySpace,
    start_at: float,
) -> dict[str, float]:
    """Single pings at `rate` per second over 64 connections from `start_at` (Unix time: every
    process of the client starts then, once all have had time to start up); one in fifty cuts a
    strap (each on a device of its own), which raises strap_tamper in the same script call that
    queues it."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(PACED_PROCESSES, mp_context=context) as pool:
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(
                    pool, paced_part, port, subjects, rate, seconds, start_at, part, SECRET_SALT
                )
                for part in range(PACED_PROCESSES)
            )
        )
    latencies = [ms for part_latencies, _, _ in parts for ms in part_latencies]
    sent_at = {device: ms for _, part_sent_at, _ in parts for device, ms in part_sent_at.items()}
    non_2xx = sum(refused for _, _, refused in parts)
    alert_latency = []
    for shard in keyspace.all_shards():
        for entry_id, fields in await redis.xrange(shard.alerts):
            device_id = fields[b"dev"].decode()
            if fields[b"kind"] == b"strap_tamper" and device_id in sent_at:
                alert_latency.append(int(entry_id.split(b"-")[0]) - sent_at[device_id])
    if not alert_latency:
        raise RuntimeError(f"none of {len(sent_at)} cut straps raised an alert: the measurement is broken")
    return {
        "target_rate": rate,
        "achieved_rate": len(latencies) / seconds,
        "non_2xx": non_2xx,
        "alerts": len(alert_latency),
        "ping_to_alert_p50_ms": round(statistics.median(alert_latency), 1),
        "ping_to_alert_p99_ms": round(percentile(alert_latency, 0.99), 1),
        "request_p50_ms": round(statistics.median(latencies), 1),
        "request_p99_ms": round(percentile(latencies, 0.99), 1),
    }


def paced_part(
    port: int, subjects: int, rate: float, seconds: float, start_at: float, part: int, salt: str
) -> tuple[list[float], dict[str, float], int]:
    """One process's share of paced_latency: its share of the rate over 64 / PACED_PROCESSES
    connections, to the devices n with n % PACED_PROCESSES == part (so no two processes share a
    device's sequence numbers), with the run's secrets (`salt`: this process has a salt of its
    own). Returns each request's latency in ms, when each cut strap was sent, and the replies
    that were not 2xx."""
    parts = PACED_PROCESSES
    connections = 64 // parts
    non_2xx = 0
    # Strap cuts from the top of the fleet down, the other pings in its lower half.
    cutters = iter(range(subjects - 1 - (subjects - 1 - part) % parts, -1, -parts))
    devices = subjects // 2 // parts
    sent_at: dict[str, float] = {}
    seqs: dict[str, int] = {}
    latencies: list[float] = []
    stop_at = start_at + seconds

    async def connection(index: int) -> None:
        nonlocal non_2xx
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        rng = random.Random(part * 1000 + index)
        interval = connections * parts / rate
        next_at = start_at + rng.uniform(0, interval)
        count = 0
        while time.time() < stop_at:
            await asyncio.sleep(max(0.0, next_at - time.time()))
            next_at += interval
            count += 1
            cut = count % 50 == 0
            n = next(cutters, None) if cut else rng.randrange(devices) * parts + part
            if n is None:
                cut, n = False, rng.randrange(devices) * parts + part
            device_id, secret, (lon, lat) = device_id_of(n), secret_of(n, salt), home_of(n)
            # Above every number the phases before used (the memory sample's is 10**9).
            seq = seqs[device_id] = seqs.get(device_id, 2 * 10**9) + 1
            body = msgspec.json.encode(
                {
                    "device_id": device_id,
                    "seq": seq,
                    # Newer than any fix of the phases before, so that the state machine applies it.
                    "fix_time": datetime.now(UTC).isoformat(),
                    "latitude": lat,
                    "longitude": lon,
                    "accuracy_m": 8.0,
                    "strap_state": "cut" if cut else "intact",
                }
            )
            request = (
                f"POST /v1/pings HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                f"X-Device-Id: {device_id}\r\nAuthorization: Bearer {secret}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.time()
            if cut:
                sent_at[device_id] = started * 1000
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 2"):
                non_2xx += 1
            length = int(re.search(rb"content-length: (\d+)", head.lower())[1])  # type: ignore[index]
            await reader.readexactly(length)
            latencies.append((time.time() - started) * 1000)
        writer.close()

    async def run() -> None:
        await asyncio.gather(*(connection(i) for i in range(connections)))

    asyncio.run(run())
    return latencies, sent_at, non_2xx


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def figures(runs: list[dict[str, float]], figure: str) -> dict[str, float]:
    """The mean of the rounds, and every refused upload of them."""
    return {
        figure: round(mean([r[figure] for r in runs])),
        "latency_p50_ms": round(mean([r["latency_p50_ms"] for r in runs]), 2),
        "latency_p99_ms": round(mean([r["latency_p99_ms"] for r in runs]), 2),
        "non_2xx": sum(int(r["non_2xx"]) for r in runs),
    }


def round_rates(summary: dict[str, object], kind: str) -> list[float]:
    """A server's rate in each round, from its Load.summary(): single pings at the number of
    connections that did best in that round (req/s), or batches (pings/s)."""
    if kind == "batched":
        batched: list[dict[str, float]] = summary["batched_rounds"]  # type: ignore[assignment]
        return [run["pings_per_s"] for run in batched]
    by_connections: dict[str, list[dict[str, float]]] = summary["single_rounds"]  # type: ignore[assignment]
    rounds = len(next(iter(by_connections.values())))
    return [max(runs[r]["requests_per_s"] for runs in by_connections.values()) for r in range(rounds)]


def paired(ours: dict[str, object], theirs: dict[str, object], kind: str) -> list[float]:
    """Our rate over theirs, round by round: each round measures both within a minute or two,
    so the machine's drift between rounds cancels out of each ratio."""
    return [a / b for a, b in zip(round_rates(ours, kind), round_rates(theirs, kind), strict=True)]


def describe_ratios(ratios: list[float], fmt: str) -> str:
    """ "median 61.2% (rounds 58.1, 61.2, 64.0 %)" for fmt "{:.1%}"."""
    rounds = ", ".join(fmt.format(r).rstrip("%").rstrip() for r in ratios)
    return f"median {fmt.format(statistics.median(ratios))} (rounds {rounds}{' %' if '%' in fmt else ''})"


@dataclass
class Load:
    """What wrk measured of one server, round by round: single-ping requests at each number of
    connections, and batches."""

    single: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    batched: list[dict[str, float]] = field(default_factory=list)

    def add_single(self, connections: int, run: dict[str, float]) -> None:
        self.single.setdefault(connections, []).append(run)

    def single_by_connections(self) -> dict[int, dict[str, float]]:
        return {c: figures(runs, "requests_per_s") for c, runs in self.single.items()}

    def best_single(self) -> dict[str, float]:
        """The server's single-ping rate: its best over the numbers of connections. A request
        rate is a capacity, and a closed-loop load measures one only when it keeps the server
        busy: 64 connections keep an empty handler busy, not a service that waits on Redis in
        every request (measured: 11-12 % of the CPUs idle under the ingest at 64, 2-3 % at 256)."""
        by_connections = self.single_by_connections()
        connections = max(by_connections, key=lambda c: by_connections[c]["requests_per_s"])
        return {**by_connections[connections], "connections": connections}

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {
            "single_rounds": {str(c): runs for c, runs in self.single.items()},
            "batched_rounds": self.batched,
        }
        if self.single:
            out["single"] = self.best_single()
            out["single_by_connections"] = {str(c): f for c, f in self.single_by_connections().items()}
        if self.batched:
            out["batched"] = figures(self.batched, "pings_per_s")
        return out


class Fleet:
    """One set of published subjects in a namespace of its own, in the shared Redis or one of its
    own (use_own_redis), and the server that ingests it."""

    def __init__(self, subjects: int) -> None:
        self.subjects = subjects
        self.redis_url = REDIS_URL
        self.redis_server: RedisServer | None = None
        self.keyspace = KeySpace(SHARDS, f"bench{uuid.uuid4().hex[:6]}")
        self.port = 0
        self.publish_s = 0.0
        self.start_s = 0.0
        self.warm_s: float | None = None
        self.load = Load()

    def server_env(self, base_env: dict[str, str], device_cache: int = 0) -> dict[str, str]:
        """The environment of the fleet's tracking server: its Redis, its namespace, and a device
        cache of `device_cache` devices (0: the whole fleet, and at least the default 200,000)."""
        return {
            **base_env,
            "REDIS_URL": self.redis_url,
            "CASEMGR_TRACKING_NAMESPACE": self.keyspace.namespace,
            "CASEMGR_TRACKING_DEVICE_CACHE": str(device_cache or max(200_000, self.subjects)),
        }

    def use_own_redis(self) -> None:
        """Keep the fleet in a Redis of its own (harness.start_redis), started now."""
        self.redis_server = start_redis()
        self.redis_url = self.redis_server.url

    def _with_redis(self, work):  # type: ignore[no-untyped-def]
        """`work(redis)` run to its end with a client of the fleet's Redis."""
        return asyncio.run(with_redis(work, self.redis_url))

    def publish(self, zones: int) -> None:
        seconds = self._with_redis(lambda r: publish(r, self.keyspace, self.subjects, zones))
        self.publish_s = round(seconds, 1)

    def memory(self) -> dict[str, float]:
        return self._with_redis(  # type: ignore[no-any-return]
            lambda r: memory_per_subject(r, self.keyspace, self.subjects, self.port)
        )

    def persist(self, dsn: str) -> dict[str, float]:
        return self._with_redis(lambda r: persist_backlog(r, self.keyspace, dsn))  # type: ignore[no-any-return]

    def latency_and_lag(self, rate: float, seconds: float, dsn: str) -> dict[str, float]:
        """Paced pings at `rate` with a persister running in a process of its own."""
        persister = multiprocessing.get_context("spawn").Process(
            target=run_persister, args=(self.keyspace.namespace, dsn, self.redis_url), daemon=True
        )
        persister.start()

        async def paced(redis: Redis) -> dict[str, float]:
            lags: list[float] = []

            async def sample() -> None:
                await asyncio.sleep(max(0.0, start_at - time.time()))
                while True:
                    lags.append(await persister_lag_ms(redis, self.keyspace))
                    await asyncio.sleep(0.2)

            await asyncio.sleep(2)  # the persister's start
            # The client's processes start together, once all are up; the lag is sampled from then.
            start_at = time.time() + 5.0
            sampler = asyncio.create_task(sample())
            try:
                figures = await paced_latency(
                    self.port, self.subjects, rate, seconds, redis, self.keyspace, start_at
                )
            finally:
                sampler.cancel()
            figures["persister_lag_p50_ms"] = round(statistics.median(lags), 1)
            figures["persister_lag_p99_ms"] = round(percentile(lags, 0.99), 1)
            figures["persister_lag_max_ms"] = round(max(lags), 1)
            figures["persister_lag_samples"] = len(lags)
            return figures

        try:
            return self._with_redis(paced)  # type: ignore[no-any-return]
        finally:
            persister.terminate()
            persister.join(10)

    def drop(self) -> None:
        """Leave nothing of the fleet: its own Redis stopped, or its keys taken out of the shared one."""
        if self.redis_server is not None:
            stop_redis(self.redis_server)
            self.redis_server = None
            return
        self._with_redis(lambda r: drop_namespace(r, self.keyspace.namespace))


async def postgis_available(admin_url: str) -> bool:
    conn = await asyncpg.connect(admin_url)
    try:
        return bool(
            await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")
        )
    finally:
        await conn.close()


def prepare_peer(subjects: int, zones: int) -> str:
    """A database of the peer's own, holding the same subjects, secrets and zones as the fleet."""
    dsn = asyncio.run(create_database("casemgr_bench_peer"))
    devices, circles = [], []
    now_ms = int(time.time() * 1000)
    for n in range(subjects):
        config = subject(n, zones, 1, now_ms)
        devices.append((device_id_of(n), secret_of(n)))
        for zone in config.zones:
            assert isinstance(zone.shape, CircleShape)
            lon, lat = zone.shape.centre
            circles.append(
                (zone.id, config.device_id, zone.kind == "exclusion", lon, lat, zone.shape.radius_m)
            )
    asyncio.run(postgis_peer.prepare(dsn, devices, circles))
    return dsn


@dataclass
class Options:
    subjects: int = 1000
    scales: list[int] = field(default_factory=list)
    zones: int = 5
    workers: int = 2
    seconds: float = 10
    # Odd, so that the median round is a round.
    rounds: int = 3
    # Single pings are measured at each (each server's rate is its best of them); batches at 8.
    connections: list[int] = field(default_factory=lambda: [64, 256])
    batch: int = 500
    device_cache: int | None = None
    persist: bool = True
    peer: bool = False
    # Each fleet in a Redis of its own (harness.start_redis), or all in the shared one.
    shared_redis: bool = False
    # Before the rounds, every subject settles (harness.settle: its state exists and its zones
    # are confirmed, as in a fleet that has been running); cold: the rounds' uploads are then
    # mostly each subject's first.
    cold: bool = False


def server_env(database_url: str) -> dict[str, str]:
    """The environment every server of these benchmarks runs in (the ingest, the limit, the peer)."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "CASEMGR_ENV": "development",
        "CASEMGR_LOG_LEVEL": "WARNING",
        "CASEMGR_DATA_KEYS": f"bench:{DATA_KEY}",
        "CASEMGR_TRACKING_SHARDS": str(SHARDS),
        # wrk sends a device far more uploads a minute than a real one: the check runs, never bites.
        "CASEMGR_TRACKING_DEVICE_UPLOADS_PER_MINUTE": "100000000",
        # No persister drains the streams during the rounds, and on a fast day five rounds queue
        # more uploads per shard than the production bound (20,000): past it every upload would
        # be a cheap 503. The check still runs on every upload.
        "CASEMGR_TRACKING_MAX_BACKLOG": "100000000",
        "PYTHONPATH": str(ROOT),
    }


def measure(o: Options) -> dict[str, object]:
    """Every figure of the module docstring, in one run; returns them (bench/run adds its own)."""
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    fleets = [Fleet(o.subjects)] + [Fleet(n) for n in o.scales]
    main_fleet = fleets[0]
    base_env = server_env(admin_url)
    result: dict[str, object] = {
        **facts("tracking_ingest"),
        "python": platform.python_version(),
        "subjects": o.subjects,
        "scales": o.scales,
        "zones_per_subject": o.zones,
        "workers": o.workers,
        "seconds": o.seconds,
        "rounds": o.rounds,
        "batch": o.batch,
        "connections": o.connections,
        "wrk_threads": os.cpu_count() or 1,
        "redis": "one shared by every fleet" if o.shared_redis else "a Redis of each fleet's own",
        "server": "casemgr.serving (uvicorn, uvloop, httptools, a SO_REUSEPORT socket per worker)",
    }
    peer_port = 0
    peer = Load()
    if o.peer and not asyncio.run(postgis_available(admin_url)):
        result["peer_skipped"] = "PostGIS is not installed in this PostgreSQL (bench/run installs it)"
        print(result["peer_skipped"], flush=True)
        o.peer = False
    servers = []
    try:
        for fleet in fleets:
            if not o.shared_redis:
                fleet.use_own_redis()
            fleet.publish(o.zones)
            print(f"published {fleet.subjects:,} subjects in {fleet.publish_s} s", flush=True)
        limit_port = free_port()
        servers.append(start("bench.empty_app:build", limit_port, o.workers, base_env))
        if o.peer:
            peer_dsn = prepare_peer(o.subjects, o.zones)
            peer_port = free_port()
            servers.append(
                start(
                    "bench.postgis_peer:build",
                    peer_port,
                    o.workers,
                    {**base_env, "PEER_DATABASE_URL": peer_dsn},
                )
            )
        for fleet in fleets:
            fleet.port = free_port()
            started = time.perf_counter()
            env = fleet.server_env(base_env, o.device_cache)
            servers.append(
                start("tracking.asgi:build", fleet.port, o.workers, env, ready_path="/health/ready")
            )
            fleet.start_s = round(time.perf_counter() - started, 1)
            print(f"tracking for {fleet.subjects:,} subjects ready in {fleet.start_s} s", flush=True)
        rss_of = {fleet.subjects: servers[-len(fleets) + i].pid for i, fleet in enumerate(fleets)}
        # Warm-ups: connections, code paths, prepared statements.
        wrk(limit_port, o.subjects, 1, 3, max(o.connections))
        # In the order of the rounds (below): the limit's phases next to the first fleet's, the
        # largest fleet's next to those, the peer's last.
        in_order = [fleets[0], *sorted(fleets[1:], key=lambda f: -f.subjects)]
        targets = [(f.load, f.port, f.subjects) for f in in_order]
        targets += [(peer, peer_port, o.subjects)] if o.peer else []
        for _, port, subjects in targets:
            wrk(port, subjects, 1, 3, max(o.connections))
            wrk(port, subjects, o.batch, 3, 8)
        if not o.cold:
            for fleet in fleets:
                started = time.perf_counter()
                uploads = settle(
                    fleet.port, fleet.subjects, max(o.connections), fleet.redis_url, fleet.keyspace
                )
                fleet.warm_s = round(time.perf_counter() - started, 1)
                print(
                    f"every one of {fleet.subjects:,} subjects reported {SETTLING_UPLOADS} times "
                    f"in {fleet.warm_s} s ({uploads:,} uploads)",
                    flush=True,
                )
        limit = Load()
        waits: list[float] = []

        def phase(port: int, subjects: int, batch: int, connections: int) -> dict[str, float]:
            """One measured phase, started on an idle machine (harness.quiet)."""
            waits.append(quiet())
            return wrk(port, subjects, batch, o.seconds, connections)

        # The rounds interleave the servers, so that the machine's drift (a shared VM) falls on
        # all; every other round goes the other way, so that no server is always measured
        # first. Each target's two servers are measured next to each other: the limit and the
        # first fleet, the first fleet and the largest. On this VM the speed moves within a
        # round: a thousand subjects once ran above the limit measured a minute before.
        in_turn = [(limit, limit_port, o.subjects, False)] + [(*t, True) for t in targets]
        for round_no in range(o.rounds):
            for load, port, subjects, batches in in_turn if round_no % 2 == 0 else in_turn[::-1]:
                for connections in o.connections:
                    load.add_single(connections, phase(port, subjects, 1, connections))
                if batches:
                    load.batched.append(phase(port, subjects, o.batch, 8))
            print(
                f"round {round_no + 1}: limit {last_single(limit)} req/s; "
                + (
                    f"peer single {last_single(peer)} req/s, "
                    f"batched {peer.batched[-1]['pings_per_s']:,.0f} pings/s; "
                    if o.peer
                    else ""
                )
                + "; ".join(
                    f"{f.subjects:,}: single {last_single(f.load)} req/s, "
                    f"batched {f.load.batched[-1]['pings_per_s']:,.0f} pings/s"
                    for f in fleets
                ),
                flush=True,
            )
        # How long each phase waited for an idle machine, in order (most wait half a second).
        result["quiet_waits_s"] = waits
        result["limit_empty_litestar"] = limit.summary()
        if o.peer:
            result["peer_postgis"] = peer.summary()
        for fleet in fleets:
            result[f"fleet_{fleet.subjects}"] = {
                "publish_s": fleet.publish_s,
                "ready_s": fleet.start_s,
                # None: measured cold (--cold), each round's uploads mostly a subject's first.
                "every_subject_reported_once_s": fleet.warm_s,
                "worker_rss_mb": largest_rss_mb(rss_of[fleet.subjects]),
                "redis_bytes_per_subject": fleet.memory(),
                **fleet.load.summary(),
            }
        for server in servers:
            if server.pid != rss_of[o.subjects]:
                stop(server)
        servers = [s for s in servers if s.pid == rss_of[o.subjects]]
        tracking_dsn = asyncio.run(create_database("casemgr_bench_tracking"))
        asyncio.run(apply_migrations(tracking_dsn))
        if o.persist:
            result["persister"] = main_fleet.persist(tracking_dsn)
            print("persister:", result["persister"], flush=True)
        half = main_fleet.load.best_single()["requests_per_s"] / 2
        result["at_half_rate"] = main_fleet.latency_and_lag(half, o.seconds, tracking_dsn)
        print("at half rate:", result["at_half_rate"], flush=True)
    finally:
        for server in servers:
            stop(server)
        for fleet in fleets:
            fleet.drop()
    return result


def last_single(load: Load) -> str:
    """This round's single-ping rates, by connections: "12,000 / 13,000"."""
    return " / ".join(f"{runs[-1]['requests_per_s']:,.0f}" for runs in load.single.values())


def verdict(ok: bool, *, strong: bool = False) -> str:
    """ "meets" or "MISSES"; with `strong`, a miss in Markdown bold (bench/run's table)."""
    return "meets" if ok else ("**MISSES**" if strong else "MISSES")


def refused(*phases: dict[str, float]) -> int:
    """Replies that were not 2xx in the phases behind a figure: a refused upload is a cheap
    reply, so a figure with any is not a rate of ingest (the table says so instead of a verdict)."""
    return sum(int(phase["non_2xx"]) for phase in phases)


def judged(target: str, ok: bool, *phases: dict[str, float], strong: bool = False) -> str:
    bad = refused(*phases)
    if bad:
        return f"{target}: {'**INVALID**' if strong else 'INVALID'}, {bad:,} replies not 2xx"
    return f"{target}: {verdict(ok, strong=strong)}"


def paced_judged(target: str, half: dict[str, float], *, strong: bool = False) -> str:
    """The ping-to-alert target's verdict, unless the paced client fell short of the rate asked
    (then the latencies were measured at a lighter load than the target names)."""
    reached = half["achieved_rate"] / half["target_rate"]
    if reached < 0.95 and not refused(half):
        return f"{target}: {'**INVALID**' if strong else 'INVALID'}, paced at {reached:.0%} of the rate asked"
    return judged(target, half["ping_to_alert_p99_ms"] <= 250, half, strong=strong)


def table_rows(result: dict[str, object]) -> list[tuple[str, str, str, str]]:
    """(measure, figure, detail, limit and verdict) for every figure of a run of measure()."""
    subjects: int = result["subjects"]  # type: ignore[assignment]
    fleet: dict[str, dict[str, float]] = result[f"fleet_{subjects}"]  # type: ignore[assignment]
    limit_single: dict[str, float] = result["limit_empty_litestar"]["single"]  # type: ignore[index]
    limit_rps = limit_single["requests_per_s"]
    single, batched = fleet["single"], fleet["batched"]
    shares = paired(fleet, result["limit_empty_litestar"], "single")  # type: ignore[arg-type]
    n = f"{subjects:,} subjects"
    rows = [
        (
            "limit: empty Litestar POST, single ping",
            f"{limit_rps:,} req/s",
            f"mean of the rounds, at {limit_single['connections']} connections (its best)",
            "",
        ),
        (
            f"tracking, single ping, {n}",
            f"{single['requests_per_s']:,} req/s",
            f"{describe_ratios(shares, '{:.1%}')} of the limit; mean at {single['connections']} "
            f"connections (its best); p50 {single['latency_p50_ms']} / p99 {single['latency_p99_ms']} ms",
            judged("≥ 60 % of the limit", statistics.median(shares) >= 0.6, single),
        ),
        (
            f"tracking, batches of {result['batch']}, {n}",
            f"{batched['pings_per_s']:,} pings/s",
            f"p50 {batched['latency_p50_ms']} / p99 {batched['latency_p99_ms']} ms per request",
            judged("≥ 100,000 pings/s", batched["pings_per_s"] >= 100_000, batched),
        ),
    ]
    if "peer_postgis" in result:
        peer: dict[str, dict[str, float]] = result["peer_postgis"]  # type: ignore[assignment]
        for kind, figure, unit in (
            ("single", "requests_per_s", "req/s"),
            ("batched", "pings_per_s", "pings/s"),
        ):
            ours = fleet[kind][figure]
            rows.append(
                (
                    f"peer: PostGIS, {'single ping' if kind == 'single' else 'batches'}, {n}",
                    f"{peer[kind][figure]:,} {unit}",
                    f"tracking is {ours / peer[kind][figure]:.1f}x; p50 {peer[kind]['latency_p50_ms']} / "
                    f"p99 {peer[kind]['latency_p99_ms']} ms",
                    "",
                )
            )
    half: dict[str, float] = result["at_half_rate"]  # type: ignore[assignment]
    rows.append(
        (
            "ping-to-alert at half the single-ping rate",
            f"p99 {half['ping_to_alert_p99_ms']} ms",
            f"p50 {half['ping_to_alert_p50_ms']} ms, {half['alerts']} alerts at "
            f"{half['achieved_rate']:,.0f} req/s (stream ids: 1 ms resolution)",
            paced_judged("≤ 250 ms", half),
        )
    )
    rows.append(
        (
            "persister lag at half the single-ping rate",
            f"p99 {half['persister_lag_p99_ms']} ms",
            f"p50 {half['persister_lag_p50_ms']} ms, max {half['persister_lag_max_ms']} ms: "
            "the oldest queued ping not yet in PostgreSQL",
            "",
        )
    )
    if "persister" in result:
        persisted: dict[str, float] = result["persister"]  # type: ignore[assignment]
        rows.append(
            (
                "persister: queued pings into PostgreSQL",
                f"{persisted['rows_per_s']:,} pings/s",
                f"{persisted['rows']:,} rows in {persisted['seconds']} s, one process",
                "",
            )
        )
    scales: list[int] = result["scales"]  # type: ignore[assignment]
    for scale in scales:
        other: dict[str, dict[str, float]] = result[f"fleet_{scale}"]  # type: ignore[assignment]
        m = f"{scale:,} subjects"
        for kind, figure, unit in (
            ("single", "requests_per_s", "req/s"),
            ("batched", "pings_per_s", "pings/s"),
        ):
            ratios = paired(other, fleet, kind)  # type: ignore[arg-type]
            rows.append(
                (
                    f"tracking, {'single ping' if kind == 'single' else 'batches'}, {m}",
                    f"{other[kind][figure]:,} {unit}",
                    f"{describe_ratios([r - 1 for r in ratios], '{:+.0%}')} vs {n}",
                    judged("within 10 %", statistics.median(ratios) >= 0.9, other[kind], fleet[kind]),
                )
            )
    for size in [subjects, *scales]:
        entry: dict[str, object] = result[f"fleet_{size}"]  # type: ignore[assignment]
        mem: dict[str, float] = entry["redis_bytes_per_subject"]  # type: ignore[assignment]
        rows.append(
            (
                f"Redis memory per subject, {size:,} subjects",
                f"{mem['config_bytes'] + mem['state_bytes']:,.0f} B",
                f"config {mem['config_bytes']:,.0f} B + state {mem['state_bytes']:,.0f} B",
                "",
            )
        )
        rows.append(
            (
                f"ingest worker RSS, {size:,} subjects",
                f"{entry['worker_rss_mb']} MB",
                f"every configuration loaded in {entry['ready_s']} s at start",
                "",
            )
        )
    return rows


def markdown_table(rows: list[tuple[str, str, str, str]]) -> str:
    return "\n".join(
        ["| measure | figure | detail | target |", "|---|---|---|---|"]
        + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    )


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument(
        "--scale",
        type=int,
        action="append",
        default=[],
        help="also serve this many subjects (e.g. 1000000) and compare the rates in the same rounds; repeatable",
    )
    parser.add_argument("--zones", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--rounds", type=int, default=3, help="each round measures every server once, in turn"
    )
    parser.add_argument(
        "--connections",
        type=int,
        action="append",
        help="wrk's connections for single pings, repeatable (default 64 and 256: each server's best counts)",
    )
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--device-cache",
        type=int,
        default=None,
        help="CASEMGR_TRACKING_DEVICE_CACHE (default: every subject, as a production fleet is sized)",
    )
    parser.add_argument(
        "--no-persist", dest="persist", action="store_false", help="skip the persister's drain"
    )
    parser.add_argument("--peer", action="store_true", help="also measure the PostGIS peer (needs PostGIS)")
    parser.add_argument(
        "--shared-redis",
        action="store_true",
        help="every fleet in the Redis of REDIS_URL, instead of a Redis of each fleet's own",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="skip the sweeps that settle every subject before the rounds (harness.settle)",
    )
    args = parser.parse_args(argv)
    return Options(
        subjects=args.subjects,
        scales=args.scale,
        zones=args.zones,
        workers=args.workers,
        seconds=args.seconds,
        rounds=args.rounds,
        connections=args.connections or [64, 256],
        batch=args.batch,
        device_cache=args.device_cache,
        persist=args.persist,
        peer=args.peer,
        shared_redis=args.shared_redis,
        cold=args.cold,
    )


def main() -> int:
    o = parse_options()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    result = measure(o)
    table = markdown_table(table_rows(result))
    scale = "".join(f"-vs-{n}s" for n in o.scales)
    heading = (
        f"{o.subjects:,} subjects{''.join(f', {n:,}' for n in o.scales)} of {o.zones} zones, "
        f"{o.workers} workers, {o.rounds} rounds of {o.seconds:.0f} s per phase, "
        f"on {machine()}, wrk ({os.cpu_count()} threads; single pings at "
        f"{' and '.join(map(str, o.connections))} connections, each server's best counts; batches at 8) "
        "on the same machine"
    )
    write_results(f"tracking-ingest-{o.subjects}s{scale}-w{o.workers}", result, heading, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
