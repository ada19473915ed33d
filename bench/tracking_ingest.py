"""Benchmark: the tracking core's ping ingest, side by side with its peer and its limits.

In one run, every server up at once and served the same way (casemgr.serving: --workers
uvicorn processes, uvloop, httptools, a SO_REUSEPORT socket each), measured in --rounds
rounds that take each server in turn, so that the drift of a shared machine falls on all:
  1. an empty Litestar POST handler (bench/empty_app.py) under single-ping requests: the peer;
  2. the tracking service under single-ping requests: at least 60 % of the peer's rate;
  3. the tracking service under batches of --batch pings: at least 100,000 pings/s, load
     generator included (wrk, a thread per core, on the same cores);
  4. with --scale N, a second tracking service holding N subjects (e.g. 1,000,000), measured in
     the same rounds: its rates within 10 % of the first's;
  5. Redis memory per monitored subject, and the ingest workers' resident memory;
  6. ping-to-alert latency at half the single-ping maximum: a paced client sends pings, some
     with the strap cut, and the time from sending such a ping to its alert's entry on the alert
     stream (the stream id is Redis's clock) is taken; p99 at most 250 ms;
  7. the persister: how fast one `casemgr tracking workers` persister drains everything the
     phases above queued into a freshly migrated PostgreSQL database (pings/s).
Subjects are published first, each with --zones zones (a home with a night curfew, the rest
exclusion zones around it); each tracking server loads every configuration before it reports
ready, as in production.

    .venv/bin/python bench/tracking_ingest.py                       # 1,000 subjects, ~2 minutes
    .venv/bin/python bench/tracking_ingest.py --scale 1000000       # and 1,000,000: ~6 minutes more

Needs wrk (Debian package "wrk") and the Redis of scripts/lib.sh (REDIS_URL or the local one).
Traffic stays on 127.0.0.1; every phase ends after --seconds. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from redis.asyncio import Redis
from reporting import largest_rss_mb, write_results
from tracking.contract import CircleShape, DeviceConfig, ScheduleWindow, ZoneSpec, secret_associated_data
from tracking.keys import KeySpace
from tracking.persister import PERSISTER_GROUP, Persister
from tracking.publishing import config_fields, schedule_deadlines
from tracking.streams import StreamConsumer

from casemgr.config import TRACKING_DB_ROLE, DataKey, app_url_from_owner_url
from casemgr.crypto import Keyring
from casemgr.db import create_pool
from casemgr.migrate import apply_migrations

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DATA_KEY = base64.b64encode(os.urandom(32)).decode()
KEYRING = Keyring((DataKey(key_id="bench", key=base64.b64decode(DATA_KEY)),))
CENTRE = (121.47, 31.23)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def offset(point: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    return (
        point[0] + east_m / (111_195.0 * math.cos(math.radians(point[1]))),
        point[1] + north_m / 111_195.0,
    )


# The fleet is a formula, shared with bench/wrk/pings.lua: device n is "B%07d", its secret the
# run's salt followed by the same digits, its home spread over 40 x 40 km by two irrational
# strides. A load generator that reads a million devices from a file spends more of the shared
# cores on its own memory than the server spends on the pings (seen: wrk at 90 % CPU).
SECRET_SALT = base64.urlsafe_b64encode(os.urandom(18)).decode()


def device_id_of(n: int) -> str:
    return f"B{n:07d}"


def secret_of(n: int) -> str:
    return f"{SECRET_SALT}{n:07d}"


def home_of(n: int) -> tuple[float, float]:
    return offset(
        CENTRE, ((n * 0.6180339887498949) % 1 - 0.5) * 40_000, ((n * 0.7548776662466927) % 1 - 0.5) * 40_000
    )


def subject(n: int, zones: int, version: int, now_ms: int) -> DeviceConfig:
    home = home_of(n)
    specs = [
        ZoneSpec(
            id=n * 10 + 1,
            kind="inclusion",
            shape=CircleShape(centre=home, radius_m=150),
            buffer_m=30,
            schedule=[ScheduleWindow(days=[1, 2, 3, 4, 5, 6, 7], start="22:00", end="06:00")],
            grace_minutes=15,
        )
    ]
    for z in range(1, zones):
        angle = 2 * math.pi * z / zones
        specs.append(
            ZoneSpec(
                id=n * 10 + 1 + z,
                kind="exclusion",
                shape=CircleShape(
                    centre=offset(home, 250 * math.cos(angle), 250 * math.sin(angle)), radius_m=60
                ),
                buffer_m=20,
            )
        )
    device_id = device_id_of(n)
    return DeviceConfig(
        device_id=device_id,
        version=version,
        secret=KEYRING.seal(secret_of(n).encode(), secret_associated_data(device_id)),
        interval_s=60,
        order_id=n + 1,
        case_id=n + 1,
        org_unit_id=1,
        starts_at_ms=now_ms - 40 * 86_400_000,
        ends_at_ms=now_ms + 50 * 86_400_000,
        zones=specs,
    )


async def publish(redis: Redis, keyspace: KeySpace, subjects: int, zones: int) -> float:
    """Publish every subject through the publish script, pipelined; returns the seconds taken."""
    script = (ROOT / "tracking" / "scripts" / "publish.lua").read_text()
    sha = await redis.script_load(script)
    now_ms = int(time.time() * 1000)
    started = time.perf_counter()
    for first in range(0, subjects, 2000):
        pipe = redis.pipeline(transaction=False)
        for n in range(first, min(first + 2000, subjects)):
            config = subject(n, zones, 1, now_ms)
            keys = keyspace.device(config.device_id)
            pipe.evalsha(
                sha,
                5,
                keys.config,
                keys.state,
                keys.seen,
                keys.shard.deadlines,
                keys.blob,
                1,
                msgspec.msgpack.encode(config_fields(config)),
                msgspec.msgpack.encode([list(d) for d in schedule_deadlines(config, now_ms)]),
                msgspec.msgpack.encode(config),
            )
        await pipe.execute()
    return time.perf_counter() - started


async def persist_backlog(redis: Redis, keyspace: KeySpace) -> dict[str, float]:
    """Drain every ping stream of the run into PostgreSQL with the real persister."""
    admin = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = "casemgr_bench_tracking"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    parts = urlsplit(admin)
    dsn = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    await apply_migrations(dsn)
    tracking_dsn = app_url_from_owner_url(dsn, TRACKING_DB_ROLE)
    pool = await create_pool(tracking_dsn, min_size=1, max_size=2)
    consumer = StreamConsumer(
        redis, [s.pings for s in keyspace.all_shards()], PERSISTER_GROUP, Persister(pool).handle
    )
    await consumer.ensure_groups()
    started = time.perf_counter()
    while await consumer.run_once():
        pass
    seconds = time.perf_counter() - started
    owner = await asyncpg.connect(dsn)
    rows = await owner.fetchval("SELECT count(*) FROM pings")
    await owner.close()
    await pool.close()
    return {"rows": rows, "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds)}


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


async def drop_namespace(redis: Redis, namespace: str) -> None:
    batch = []
    async for key in redis.scan_iter(match=f"{namespace}:*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            await redis.unlink(*batch)
            batch = []
    if batch:
        await redis.unlink(*batch)


def start(
    app: str, port: int, workers: int, env: dict[str, str], ready_path: str | None = None
) -> subprocess.Popen[bytes]:
    """Serve `app` as casemgr serves its own (casemgr.serving); with `ready_path`, wait until it
    answers 200 there (the tracking workers report ready once their device cache is loaded)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "casemgr.serving",
            app,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(1.0)  # let every worker finish its start-up
                if ready_path is None or all_ready(port, ready_path, workers):
                    return process
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{app} did not start")


def all_ready(port: int, path: str, workers: int) -> bool:
    """Ready on enough fresh connections in a row that every worker's socket was reached."""
    for _ in range(8 * workers):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
            if not s.recv(64).startswith(b"HTTP/1.1 200"):
                return False
    return True


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


_RUN = iter(range(1, 1000))
# A run's pings per device stay far below this; each run's sequence numbers (and fix times,
# one second per number from the base) start above the last run's, so no run repeats a ping.
_SEQS_PER_RUN = 100_000


def wrk(port: int, subjects: int, batch: int, seconds: float, connections: int) -> dict[str, float]:
    first = next(_RUN) * _SEQS_PER_RUN
    base = int(time.time()) - 35 * 86_400
    output = subprocess.run(
        [
            "wrk",
            f"-t{os.cpu_count() or 1}",  # wrk's advice: a thread per core
            f"-c{connections}",
            f"-d{seconds:.0f}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "wrk" / "pings.lua"),
            f"http://127.0.0.1:{port}",
            "--",
            str(subjects),
            str(batch),
            str(base),
            str(first),
            SECRET_SALT,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "requests_per_s": rate,
        "pings_per_s": rate * batch,
        "requests": requests,
        "non_2xx": int(bad[1]) if bad else 0,
        "socket_errors": errors[1] if errors else "",
    }


async def paced_latency(
    port: int,
    subjects: int,
    rate: float,
    seconds: float,
    redis: Redis,
    keyspace: KeySpace,
) -> dict[str, float]:
    """Single pings at `rate` per second over 64 connections; one in fifty cuts a strap (each on
    a device of its own), which raises strap_tamper in the same script call that queues it."""
    connections = 64
    cutters = iter(range(subjects - 1, -1, -1))
    sent_at: dict[str, float] = {}
    seqs: dict[str, int] = {}
    base = int(time.time()) - 20 * 86_400
    stop_at = time.perf_counter() + seconds
    latencies: list[float] = []

    async def connection(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        rng = random.Random(index)
        interval = connections / rate
        next_at = time.perf_counter() + rng.uniform(0, interval)
        count = 0
        while time.perf_counter() < stop_at:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += interval
            count += 1
            cut = count % 50 == 0
            n = next(cutters, None) if cut else rng.randrange(subjects // 2)
            if n is None:
                cut, n = False, rng.randrange(subjects // 2)
            device_id, secret, (lon, lat) = device_id_of(n), secret_of(n), home_of(n)
            seq = seqs[device_id] = seqs.get(device_id, 10**7) + 1
            body = msgspec.json.encode(
                {
                    "device_id": device_id,
                    "seq": seq,
                    "fix_time": datetime.fromtimestamp(base + seq - 10**7, tz=UTC).isoformat(),
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
            length = int(re.search(rb"content-length: (\d+)", head.lower())[1])  # type: ignore[index]
            await reader.readexactly(length)
            latencies.append((time.time() - started) * 1000)
        writer.close()

    await asyncio.gather(*(connection(i) for i in range(connections)))
    alert_latency = []
    for shard in keyspace.all_shards():
        for entry_id, fields in await redis.xrange(shard.alerts):
            device_id = fields[b"dev"].decode()
            if fields[b"kind"] == b"strap_tamper" and device_id in sent_at:
                alert_latency.append(int(entry_id.split(b"-")[0]) - sent_at[device_id])
    return {
        "target_rate": rate,
        "achieved_rate": len(latencies) / seconds,
        "alerts": len(alert_latency),
        "ping_to_alert_p50_ms": round(statistics.median(alert_latency), 1),
        "ping_to_alert_p99_ms": round(percentile(alert_latency, 0.99), 1),
        "request_p50_ms": round(statistics.median(latencies), 1),
        "request_p99_ms": round(percentile(latencies, 0.99), 1),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Fleet:
    """One set of published subjects in a namespace of its own, and the server that ingests it."""

    def __init__(self, subjects: int) -> None:
        self.subjects = subjects
        self.keyspace = KeySpace(64, f"bench{uuid.uuid4().hex[:6]}")
        self.port = 0
        self.publish_s = 0.0
        self.start_s = 0.0
        self.single: list[float] = []
        self.batched: list[float] = []

    async def publish(self, zones: int) -> None:
        redis = Redis.from_url(REDIS_URL)
        try:
            self.publish_s = round(await publish(redis, self.keyspace, self.subjects, zones), 1)
        finally:
            await redis.aclose()

    async def latency(self, rate: float, seconds: float) -> dict[str, float]:
        redis = Redis.from_url(REDIS_URL)
        try:
            return await paced_latency(self.port, self.subjects, rate, seconds, redis, self.keyspace)
        finally:
            await redis.aclose()

    async def memory(self) -> dict[str, float]:
        redis = Redis.from_url(REDIS_URL)
        try:
            return await memory_per_subject(redis, self.keyspace, self.subjects, self.port)
        finally:
            await redis.aclose()

    async def persist(self) -> dict[str, float]:
        redis = Redis.from_url(REDIS_URL)
        try:
            return await persist_backlog(redis, self.keyspace)
        finally:
            await redis.aclose()

    async def drop(self) -> None:
        redis = Redis.from_url(REDIS_URL)
        try:
            await drop_namespace(redis, self.keyspace.namespace)
        finally:
            await redis.aclose()


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument(
        "--scale",
        type=int,
        default=0,
        help="also serve this many subjects (e.g. 1000000) beside --subjects and compare the rates in the same rounds",
    )
    parser.add_argument("--zones", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--rounds", type=int, default=2, help="each round measures every server once, in turn"
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--device-cache",
        type=int,
        default=None,
        help="CASEMGR_TRACKING_DEVICE_CACHE (default: every subject, as a production fleet is sized)",
    )
    parser.add_argument("--no-persist", dest="persist", action="store_false", help="skip the persister phase")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    fleets = [Fleet(args.subjects)] + ([Fleet(args.scale)] if args.scale else [])
    main_fleet = fleets[0]
    base_env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        "REDIS_URL": REDIS_URL,
        "CASEMGR_ENV": "development",
        "CASEMGR_LOG_LEVEL": "WARNING",
        "CASEMGR_DATA_KEYS": f"bench:{DATA_KEY}",
        "CASEMGR_TRACKING_SHARDS": "64",
        "PYTHONPATH": str(ROOT),
    }
    result: dict[str, object] = {
        "benchmark": "tracking_ingest",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "subjects": args.subjects,
        "scale_subjects": args.scale or None,
        "zones_per_subject": args.zones,
        "workers": args.workers,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "batch": args.batch,
        "connections": args.connections,
        "wrk_threads": os.cpu_count() or 1,
        "server": "casemgr.serving (uvicorn, uvloop, httptools, a SO_REUSEPORT socket per worker)",
    }
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for fleet in fleets:
            asyncio.run(fleet.publish(args.zones))
            print(f"published {fleet.subjects:,} subjects in {fleet.publish_s} s", flush=True)
        empty_port = free_port()
        servers.append(start("bench.empty_app:build", empty_port, args.workers, base_env))
        for fleet in fleets:
            fleet.port = free_port()
            started = time.perf_counter()
            env = {
                **base_env,
                "CASEMGR_TRACKING_NAMESPACE": fleet.keyspace.namespace,
                "CASEMGR_TRACKING_DEVICE_CACHE": str(args.device_cache or max(200_000, fleet.subjects)),
            }
            servers.append(
                start("tracking.asgi:build", fleet.port, args.workers, env, ready_path="/health/ready")
            )
            fleet.start_s = round(time.perf_counter() - started, 1)
            print(f"tracking for {fleet.subjects:,} subjects ready in {fleet.start_s} s", flush=True)
        # Warm-ups: connections, code paths, and (without a preload) the device caches.
        wrk(empty_port, main_fleet.subjects, 1, 3, args.connections)
        for fleet in fleets:
            wrk(fleet.port, fleet.subjects, 1, 3, args.connections)
            wrk(fleet.port, fleet.subjects, args.batch, 3, 8)
        empty: list[float] = []
        # The rounds interleave the servers, so that the machine's drift (a shared VM) falls on all.
        for round_no in range(args.rounds):
            empty.append(
                wrk(empty_port, main_fleet.subjects, 1, args.seconds, args.connections)["requests_per_s"]
            )
            for fleet in fleets:
                fleet.single.append(
                    wrk(fleet.port, fleet.subjects, 1, args.seconds, args.connections)["requests_per_s"]
                )
                fleet.batched.append(
                    wrk(fleet.port, fleet.subjects, args.batch, args.seconds, 8)["pings_per_s"]
                )
            print(
                f"round {round_no + 1}: empty {empty[-1]:,.0f} req/s; "
                + "; ".join(
                    f"{f.subjects:,}: single {f.single[-1]:,.0f} req/s, batched {f.batched[-1]:,.0f} pings/s"
                    for f in fleets
                ),
                flush=True,
            )
        result["empty_litestar_single_rps"] = empty
        for fleet in fleets:
            result[f"fleet_{fleet.subjects}"] = {
                "publish_s": fleet.publish_s,
                "ready_s": fleet.start_s,
                "single_rps": fleet.single,
                "batched_pings_per_s": fleet.batched,
                "worker_rss_mb": largest_rss_mb(servers[1 + fleets.index(fleet)].pid),
            }
        result["latency_at_half_rate"] = asyncio.run(
            main_fleet.latency(mean(main_fleet.single) / 2, args.seconds)
        )
        print("latency:", result["latency_at_half_rate"], flush=True)
        for fleet in fleets:
            result[f"fleet_{fleet.subjects}"]["redis_bytes_per_subject"] = asyncio.run(fleet.memory())  # type: ignore[index]
        for server in servers:
            stop(server)
        servers = []
        if args.persist:
            result["persister"] = asyncio.run(main_fleet.persist())
            print("persister:", result["persister"], flush=True)
    finally:
        for server in servers:
            stop(server)
        for fleet in fleets:
            asyncio.run(fleet.drop())

    rows = table_rows(result, fleets, mean(empty), args.batch)
    table = "\n".join(
        ["| measure | figure | detail | limit |", "|---|---|---|---|"]
        + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    )
    scale = f"-vs-{args.scale}s" if args.scale else ""
    heading = (
        f"{args.subjects:,} subjects{f' and {args.scale:,}' if args.scale else ''} of {args.zones} zones, "
        f"{args.workers} workers, {args.rounds} rounds of {args.seconds:.0f} s per phase, "
        f"on {platform.node()} ({os.cpu_count()} CPUs), wrk ({os.cpu_count()} threads, {args.connections} "
        f"connections) on the same machine"
    )
    write_results(f"tracking-ingest-{args.subjects}s{scale}-w{args.workers}", result, heading, table)
    print(table)
    return 0


def table_rows(
    result: dict[str, object], fleets: list[Fleet], empty: float, batch: int
) -> list[tuple[str, str, str, str]]:
    main_fleet = fleets[0]
    single, batched = mean(main_fleet.single), mean(main_fleet.batched)
    result["single_vs_empty"] = round(single / empty, 3)
    lat: dict[str, float] = result["latency_at_half_rate"]  # type: ignore[assignment]
    n = f"{main_fleet.subjects:,} subjects"
    rows = [
        ("empty Litestar POST, single ping (peer)", f"{empty:,.0f} req/s", "mean of the rounds", ""),
        (f"tracking, single ping, {n}", f"{single:,.0f} req/s", f"{single / empty:.0%} of peer", "≥ 60 %"),
        (f"tracking, batches of {batch}, {n}", f"{batched:,.0f} pings/s", "", "≥ 100,000 pings/s"),
        (
            "ping-to-alert p99 at half rate",
            f"{lat['ping_to_alert_p99_ms']} ms",
            f"p50 {lat['ping_to_alert_p50_ms']} ms, {lat['alerts']} alerts (stream ids: 1 ms resolution)",
            "≤ 250 ms",
        ),
    ]
    for fleet in fleets[1:]:
        ratio_single = mean(fleet.single) / single
        ratio_batched = mean(fleet.batched) / batched
        result[f"scale_{fleet.subjects}_vs_{main_fleet.subjects}"] = {
            "single": round(ratio_single, 3),
            "batched": round(ratio_batched, 3),
        }
        m = f"{fleet.subjects:,} subjects"
        rows.append(
            (
                f"tracking, single ping, {m}",
                f"{mean(fleet.single):,.0f} req/s",
                f"{ratio_single - 1:+.0%} vs {n}",
                "within 10 %",
            )
        )
        rows.append(
            (
                f"tracking, batches of {batch}, {m}",
                f"{mean(fleet.batched):,.0f} pings/s",
                f"{ratio_batched - 1:+.0%} vs {n}",
                "within 10 %",
            )
        )
    for fleet in fleets:
        entry: dict[str, object] = result[f"fleet_{fleet.subjects}"]  # type: ignore[assignment]
        mem: dict[str, float] = entry["redis_bytes_per_subject"]  # type: ignore[assignment]
        rows.append(
            (
                f"Redis memory per subject, {fleet.subjects:,} subjects",
                f"{mem['config_bytes'] + mem['state_bytes']:,.0f} B",
                f"config {mem['config_bytes']:,.0f} B + state {mem['state_bytes']:,.0f} B",
                "",
            )
        )
        rows.append(
            (
                f"ingest worker RSS, {fleet.subjects:,} subjects",
                f"{entry['worker_rss_mb']} MB",
                f"device cache loaded in {entry['ready_s']} s at start",
                "",
            )
        )
    if "persister" in result:
        persisted: dict[str, float] = result["persister"]  # type: ignore[assignment]
        rows.append(
            (
                "persister: queued pings into PostgreSQL",
                f"{persisted['rows_per_s']:,.0f} pings/s",
                f"{persisted['rows']:,} rows in {persisted['seconds']} s, one process",
                "",
            )
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
