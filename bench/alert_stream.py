"""Benchmark: alerts pushed to officers' live streams (Server-Sent Events).

Starts the real service (`casemgr serve`, one worker) on a private database, opens
--connections streams in one client process (each its own session), then commits --alerts
alerts one by one, --interval apart, and takes for every stream and every alert the time from
the commit to the event's arrival. Limits: p99 at most 100 ms; one process holds 10,000 open
streams. Prints the figures and writes them to bench/results/.

    .venv/bin/python bench/alert_stream.py                         # 10,000 streams, 20 alerts
    .venv/bin/python bench/alert_stream.py --connections 1000      # a quick look

Needs the PostgreSQL and Redis of scripts/lib.sh. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import uvloop
from redis.asyncio import Redis

from casemgr.auth.principal import MfaState, Role
from casemgr.auth.sessions import SessionStore
from casemgr.clock import SystemClock
from casemgr.migrate import apply_migrations

ROOT = Path(__file__).resolve().parents[1]
ADMIN = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE = "casemgr_bench_stream"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def prepare(connections: int) -> tuple[str, int, list[str]]:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    await admin.close()
    dsn = with_database(ADMIN, DATABASE)
    await apply_migrations(dsn)
    conn = await asyncpg.connect(dsn)
    city = await conn.fetchval(
        "INSERT INTO org_units (parent_id, kind, name, code, path) VALUES (NULL, 'city', 'Bench City', 'BENCH', "
        "'n0') RETURNING id"
    )
    await conn.execute("UPDATE org_units SET path = ('n' || id)::ltree WHERE id = $1", city)
    path = await conn.fetchval("SELECT path::text FROM org_units WHERE id = $1", city)
    account = await conn.fetchval(
        "INSERT INTO accounts (username, display_name, role, org_unit_id, password_hash) "
        "VALUES ('bench.supervisor', 'bench', 'supervisor', $1, 'x') RETURNING id",
        city,
    )
    await conn.close()
    redis = Redis.from_url(REDIS_URL)
    sessions = SessionStore(
        redis, SystemClock(), idle_seconds=3600, absolute_seconds=7200, pending_seconds=60
    )
    tokens = [
        (
            await sessions.issue(
                account_id=account, role=Role.SUPERVISOR, org_unit_id=city, scope=path, mfa=MfaState.PASSED
            )
        ).token
        for _ in range(connections)
    ]
    await redis.aclose()
    return dsn, city, tokens


def start_server(dsn: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": REDIS_URL,
        "CASEMGR_ENV": "development",
        "CASEMGR_LOG_LEVEL": "WARNING",
        "CASEMGR_DATA_KEYS": "b1:" + base64.b64encode(os.urandom(32)).decode(),
        "CASEMGR_TASK_ENGINE_INTERVAL_SECONDS": "0",
        "CASEMGR_ALERT_ESCALATION_INTERVAL_SECONDS": "0",
        "CASEMGR_NOTIFICATION_INTERVAL_SECONDS": "0",
        "CASEMGR_DB_POOL_MAX": "20",
    }

    def raise_file_limit() -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    process = subprocess.Popen(
        [sys.executable, "-m", "casemgr", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        preexec_fn=raise_file_limit,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the service did not start")


_ALERT_ID = re.compile(rb'\ndata: \{"id":(\d+)')


class StreamClient(asyncio.Protocol):
    """One officer's stream, read as cheaply as a client can: the load generator shares the
    server's two cores, and every microsecond it spends per event is one the server loses."""

    def __init__(self, arrivals: list[tuple[int, float]]) -> None:
        self.arrivals = arrivals
        self.status: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.pending = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.status.done():
            self.pending += data
            head, found, rest = self.pending.partition(b"\r\n\r\n")
            if not found:
                return
            self.status.set_result(head)
            data, self.pending = rest, b""
        # Events end with a blank line; keep a partial one for the next read.
        data = self.pending + data
        cut = data.rfind(b"\r\n\r\n") + 4
        self.pending = data[cut:] if cut >= 4 else data
        for match in _ALERT_ID.finditer(data, 0, cut if cut >= 4 else 0):
            self.arrivals.append((int(match[1]), now))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status.done():
            self.status.set_result(b"")
        if not self.closed.done():
            self.closed.set_result(None)


async def stream(
    port: int,
    token: str,
    arrivals: list[tuple[int, float]],
    ready: asyncio.Event,
    counter: list[int],
    total: int,
    retries: list[int],
) -> None:
    """One officer's stream; on 503 it waits the Retry-After and connects again, as browsers'
    EventSource does."""
    loop = asyncio.get_running_loop()
    while True:
        transport, client = await loop.create_connection(lambda: StreamClient(arrivals), "127.0.0.1", port)
        transport.write(
            f"GET /alerts/stream HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = await client.status
        if head.startswith(b"HTTP/1.1 200"):
            break
        transport.close()
        if not head.startswith(b"HTTP/1.1 503"):
            raise RuntimeError(head.decode(errors="replace")[:200])
        retries[0] += 1
        await asyncio.sleep(5)
    counter[0] += 1
    if counter[0] == total:
        ready.set()
    try:
        await client.closed
    finally:
        transport.close()


async def drive(
    dsn: str, port: int, tokens: list[str], alerts: int, interval: float, city: int
) -> dict[str, object]:
    arrivals: list[tuple[int, float]] = []
    ready = asyncio.Event()
    counter = [0]
    retries = [0]
    started = time.perf_counter()
    tasks = []
    for i, token in enumerate(tokens):
        tasks.append(asyncio.create_task(stream(port, token, arrivals, ready, counter, len(tokens), retries)))
        if i % 100 == 99:
            await asyncio.sleep(0.5)  # connect in waves, as officers log in
    await asyncio.wait_for(ready.wait(), timeout=600)
    connect_s = time.perf_counter() - started
    await asyncio.sleep(2)
    conn = await asyncpg.connect(dsn)
    committed: dict[int, float] = {}
    for n in range(alerts):
        alert_id = await conn.fetchval(
            "INSERT INTO alerts (kind, severity, org_unit_id, raised_at, details, dedupe_key) "
            "VALUES ('missed_intake', 'serious', $1, now(), '{}', $2) RETURNING id",
            city,
            f"bench:{n}:{time.time()}",
        )
        committed[alert_id] = time.time()
        await asyncio.sleep(interval)
    await asyncio.sleep(3)
    await conn.close()
    for task in tasks:
        task.cancel()
    latencies = [(t - committed[a]) * 1000 for a, t in arrivals if a in committed]
    expected = len(tokens) * alerts
    by_alert: dict[int, list[float]] = {}
    for a, t in arrivals:
        if a in committed:
            by_alert.setdefault(a, []).append((t - committed[a]) * 1000)
    return {
        # In commit order: [p50, p99, count] of each alert's deliveries.
        "per_alert": [
            [round(percentile(v, 0.5), 1), round(percentile(v, 0.99), 1), len(v)]
            for _, v in sorted(by_alert.items())
        ],
        "connect_s": round(connect_s, 1),
        "connect_retries_after_503": retries[0],
        "deliveries": len(latencies),
        "expected": expected,
        "p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.connections + 100:
        sys.exit(f"the open-files limit ({hard}) is below {args.connections} connections")
    dsn, city, tokens = asyncio.run(prepare(args.connections))
    port = free_port()
    server = start_server(dsn, port)
    try:
        figures = uvloop.run(drive(dsn, port, tokens, args.alerts, args.interval, city))
        figures["server_rss_mb"] = round(rss_mb(server.pid), 1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {
        "benchmark": "alert_stream",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "connections": args.connections,
        "alerts": args.alerts,
        "interval_s": args.interval,
        **figures,
    }
    table = "\n".join(
        [
            "| measure | figure | limit |",
            "|---|---|---|",
            f"| open streams in one process | {args.connections:,} (all connected in {figures['connect_s']} s, "
            f"{figures['connect_retries_after_503']} retries after 503) | 10,000 |",
            f"| deliveries | {figures['deliveries']:,} of {figures['expected']:,} | all |",
            f"| commit to event, p50 | {figures['p50_ms']} ms | |",
            f"| commit to event, p99 | {figures['p99_ms']} ms | ≤ 100 ms |",
            f"| commit to event, max | {figures['max_ms']} ms | |",
            f"| server memory (RSS) | {figures['server_rss_mb']} MB | |",
        ]
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    out = ROOT / "bench" / "results" / f"{stamp}-{platform.node()}-alert-stream-{args.connections}c"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        f"{args.connections:,} streams, {args.alerts} alerts {args.interval} s apart, one worker, "
        f"on {platform.node()} ({os.cpu_count()} CPUs), client on the same machine\n\n{table}\n"
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
