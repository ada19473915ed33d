"""Benchmark: the tracking core's ping ingest, side by side with its peer and its limits.

In one run, on the same uvicorn settings (--workers processes, uvloop, httptools):
  1. an empty Litestar POST handler (bench/empty_app.py) under single-ping requests: the peer;
  2. the tracking service under single-ping requests: at least 60 % of the peer's rate;
  3. the tracking service under batches of --batch pings: at least 100,000 pings/s, load
     generator included (wrk, on the same two cores);
  4. Redis memory per monitored subject (configuration, and configuration plus state);
  5. ping-to-alert latency at half the single-ping maximum: a paced client sends pings, some
     with the strap cut, and the time from sending such a ping to its alert's entry on the alert
     stream (the stream id is Redis's clock) is taken; p99 at most 250 ms;
  6. the persister: how fast one `casemgr tracking workers` persister drains everything the
     phases above queued into a freshly migrated PostgreSQL database (pings/s).
--subjects devices (default 1,000) are published first, each with --zones zones (a home with
a night curfew, the rest exclusion zones around it). Run it with 1,000,000 subjects too: the
rates must stay within 10 %.

    .venv/bin/python bench/tracking_ingest.py                       # 1,000 subjects, ~2 minutes
    .venv/bin/python bench/tracking_ingest.py --subjects 1000000    # adds ~3 minutes to publish

Needs wrk (Debian package "wrk") and the Redis of scripts/lib.sh (REDIS_URL or the local one).
Traffic stays on 127.0.0.1; every phase ends after --seconds. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
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
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from redis.asyncio import Redis
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


def subject(n: int, zones: int, version: int, now_ms: int) -> tuple[DeviceConfig, str, tuple[float, float]]:
    rng = random.Random(n)
    home = offset(CENTRE, rng.uniform(-20_000, 20_000), rng.uniform(-20_000, 20_000))
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
    device_id = f"B{n:07d}"
    secret = base64.urlsafe_b64encode(rng.randbytes(24)).decode()
    config = DeviceConfig(
        device_id=device_id,
        version=version,
        secret=KEYRING.seal(secret.encode(), secret_associated_data(device_id)),
        interval_s=60,
        order_id=n + 1,
        case_id=n + 1,
        org_unit_id=1,
        starts_at_ms=now_ms - 40 * 86_400_000,
        ends_at_ms=now_ms + 50 * 86_400_000,
        zones=specs,
    )
    return config, secret, home


async def publish(redis: Redis, keyspace: KeySpace, subjects: int, zones: int, devices_file: Path) -> float:
    """Publish every subject through the publish script, pipelined; returns the seconds taken."""
    script = (ROOT / "tracking" / "scripts" / "publish.lua").read_text()
    sha = await redis.script_load(script)
    now_ms = int(time.time() * 1000)
    started = time.perf_counter()
    with devices_file.open("w") as out:
        for first in range(0, subjects, 2000):
            pipe = redis.pipeline(transaction=False)
            for n in range(first, min(first + 2000, subjects)):
                config, secret, home = subject(n, zones, 1, now_ms)
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
                out.write(f"{config.device_id} {secret} {home[0]:.6f} {home[1]:.6f}\n")
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


async def memory_per_subject(redis: Redis, keyspace: KeySpace, subjects: int) -> dict[str, float]:
    """MEMORY USAGE of a sample of subjects' own keys (configuration, state, duplicate bitmap)."""
    sample = random.Random(1).sample(range(subjects), min(500, subjects))
    config = state = 0
    for n in sample:
        keys = keyspace.device(f"B{n:07d}")
        config += (await redis.memory_usage(keys.config) or 0) + (await redis.memory_usage(keys.blob) or 0)
        state += (await redis.memory_usage(keys.state) or 0) + (await redis.memory_usage(keys.seen) or 0)
    return {"config_bytes": config / len(sample), "state_bytes": state / len(sample)}


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


def wrk(port: int, devices_file: Path, batch: int, seconds: float, connections: int) -> dict[str, float]:
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
            str(devices_file),
            str(batch),
            str(base),
            str(first),
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
    devices: list[tuple[str, str, float, float]],
    rate: float,
    seconds: float,
    redis: Redis,
    keyspace: KeySpace,
) -> dict[str, float]:
    """Single pings at `rate` per second over 64 connections; one in fifty cuts a strap (each on
    a device of its own), which raises strap_tamper in the same script call that queues it."""
    connections = 64
    cutters = iter(range(len(devices) - 1, -1, -1))
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
            n = next(cutters, None) if cut else rng.randrange(len(devices) // 2)
            if n is None:
                cut, n = False, rng.randrange(len(devices) // 2)
            device_id, secret, lon, lat = devices[n]
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--zones", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15)
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

    namespace = f"bench{uuid.uuid4().hex[:6]}"
    keyspace = KeySpace(64, namespace)
    env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        "REDIS_URL": REDIS_URL,
        "CASEMGR_ENV": "development",
        "CASEMGR_LOG_LEVEL": "WARNING",
        "CASEMGR_DATA_KEYS": f"bench:{DATA_KEY}",
        "CASEMGR_TRACKING_NAMESPACE": namespace,
        "CASEMGR_TRACKING_SHARDS": "64",
        "CASEMGR_TRACKING_DEVICE_CACHE": str(args.device_cache or max(200_000, args.subjects)),
        "PYTHONPATH": str(ROOT),
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    devices_file = workdir / "devices.txt"
    result: dict[str, object] = {
        "benchmark": "tracking_ingest",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "subjects": args.subjects,
        "zones_per_subject": args.zones,
        "workers": args.workers,
        "seconds": args.seconds,
        "batch": args.batch,
        "connections": args.connections,
        "wrk_threads": os.cpu_count() or 1,
        "server": "casemgr.serving (uvicorn, uvloop, httptools, a SO_REUSEPORT socket per worker)",
    }

    async def prepare() -> None:
        redis = Redis.from_url(REDIS_URL)
        before = (await redis.info("memory"))["used_memory"]
        result["publish_s"] = round(
            await publish(redis, keyspace, args.subjects, args.zones, devices_file), 1
        )
        after = (await redis.info("memory"))["used_memory"]
        result["redis_used_memory_per_subject_bytes"] = round((after - before) / args.subjects)
        await redis.aclose()

    asyncio.run(prepare())
    print("published:", result["publish_s"], "s")
    try:
        port = free_port()
        server = start("bench.empty_app:build", port, args.workers, env)
        try:
            wrk(port, devices_file, 1, 3, args.connections)  # warm-up
            result["empty_litestar_single"] = wrk(port, devices_file, 1, args.seconds, args.connections)
        finally:
            stop(server)
        print("empty litestar:", result["empty_litestar_single"])
        port = free_port()
        started = time.perf_counter()
        server = start("tracking.asgi:build", port, args.workers, env, ready_path="/health/ready")
        result["tracking_start_s"] = round(time.perf_counter() - started, 1)
        try:
            wrk(port, devices_file, 1, 3, args.connections)  # warm-up: compiles configurations
            single = wrk(port, devices_file, 1, args.seconds, args.connections)
            result["tracking_single"] = single
            print("tracking single:", single)
            wrk(port, devices_file, args.batch, 3, 8)
            result["tracking_batched"] = wrk(port, devices_file, args.batch, args.seconds, 8)
            print("tracking batched:", result["tracking_batched"])
            devices = [
                (line.split()[0], line.split()[1], float(line.split()[2]), float(line.split()[3]))
                for line in devices_file.read_text().splitlines()
            ]

            async def latency() -> dict[str, float]:
                redis = Redis.from_url(REDIS_URL)
                try:
                    return await paced_latency(
                        port, devices, single["requests_per_s"] / 2, args.seconds, redis, keyspace
                    )
                finally:
                    await redis.aclose()

            result["latency_at_half_rate"] = asyncio.run(latency())
            print("latency:", result["latency_at_half_rate"])

            async def memory() -> dict[str, float]:
                redis = Redis.from_url(REDIS_URL)
                try:
                    return await memory_per_subject(redis, keyspace, args.subjects)
                finally:
                    await redis.aclose()

            result["memory_usage_per_subject"] = asyncio.run(memory())
        finally:
            stop(server)
        if args.persist:

            async def persist() -> dict[str, float]:
                redis = Redis.from_url(REDIS_URL)
                try:
                    return await persist_backlog(redis, keyspace)
                finally:
                    await redis.aclose()

            result["persister"] = asyncio.run(persist())
            print("persister:", result["persister"])
    finally:

        async def cleanup() -> None:
            redis = Redis.from_url(REDIS_URL)
            await drop_namespace(redis, namespace)
            await redis.aclose()

        asyncio.run(cleanup())
        shutil.rmtree(workdir, ignore_errors=True)

    empty = result["empty_litestar_single"]["requests_per_s"]  # type: ignore[index]
    single_rate = result["tracking_single"]["requests_per_s"]  # type: ignore[index]
    batched = result["tracking_batched"]["pings_per_s"]  # type: ignore[index]
    lat = result["latency_at_half_rate"]  # type: ignore[assignment]
    mem = result["memory_usage_per_subject"]  # type: ignore[assignment]
    result["single_vs_empty"] = round(single_rate / empty, 3)
    rows = [
        ("empty Litestar POST, single ping (peer)", f"{empty:,.0f} req/s", "", ""),
        (
            "tracking, single ping",
            f"{single_rate:,.0f} req/s",
            f"{single_rate / empty:.0%} of peer",
            "≥ 60 %",
        ),
        (f"tracking, batches of {args.batch}", f"{batched:,.0f} pings/s", "", "≥ 100,000 pings/s"),
        (
            "ping-to-alert p99 at half rate",
            f"{lat['ping_to_alert_p99_ms']} ms",  # type: ignore[index]
            f"p50 {lat['ping_to_alert_p50_ms']} ms, {lat['alerts']} alerts (stream ids: 1 ms resolution)",
            "≤ 250 ms",
        ),  # type: ignore[index]
        (
            "Redis memory per subject",
            f"{mem['config_bytes'] + mem['state_bytes']:,.0f} B",  # type: ignore[index]
            f"config {mem['config_bytes']:,.0f} B + state {mem['state_bytes']:,.0f} B",
            "",
        ),  # type: ignore[index]
    ]
    if "persister" in result:
        persisted = result["persister"]  # type: ignore[assignment]
        rows.append(
            (
                "persister: queued pings into PostgreSQL",
                f"{persisted['rows_per_s']:,.0f} pings/s",  # type: ignore[index]
                f"{persisted['rows']:,} rows in {persisted['seconds']} s, one process",  # type: ignore[index]
                "",
            )
        )
    table = "\n".join(
        ["| measure | figure | detail | limit |", "|---|---|---|---|"]
        + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    out = (
        ROOT
        / "bench"
        / "results"
        / f"{stamp}-{platform.node()}-tracking-ingest-{args.subjects}s-w{args.workers}"
    )
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        f"{args.subjects:,} subjects of {args.zones} zones, {args.workers} workers, {args.seconds:.0f} s per phase, "
        f"on {platform.node()} ({os.cpu_count()} CPUs), wrk ({os.cpu_count()} threads, {args.connections} "
        f"connections) on the same machine\n\n{table}\n"
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
