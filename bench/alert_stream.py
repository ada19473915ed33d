"""Benchmark: alerts pushed to officers' live streams (Server-Sent Events).

Starts the real service (`casemgr serve`, one worker unless --workers) on a private database, opens
--connections streams in one client process (each its own session), then commits --alerts
alerts one by one, --interval apart, and takes for every stream and every alert the time from
the commit to the event's arrival at the client's socket (the kernel's receive stamp,
SO_TIMESTAMPING), and to this client's reading it (which on two shared cores lags behind: it
reads 10,000 sockets per event on the core the server is not using). Limits: p99 at most
100 ms; one process holds 10,000 open streams. Prints the figures and writes them to
bench/results/.

    .venv/bin/python bench/alert_stream.py                         # 10,000 streams, 20 alerts
    .venv/bin/python bench/alert_stream.py --connections 1000      # a quick look

Needs the PostgreSQL and Redis of scripts/lib.sh. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import re
import resource
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import uvloop
from redis.asyncio import Redis
from reporting import largest_rss_mb, write_results

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


def start_server(dsn: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": REDIS_URL,
        "CASEMGR_ENV": "development",
        "CASEMGR_LOG_LEVEL": "WARNING",
        # Every client of a benchmark is one address on loopback: the per-address limits are off.
        "CASEMGR_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0",
        "CASEMGR_RATE_LIMIT_LOGINS_PER_ADDRESS_PER_MINUTE": "0",
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
        [sys.executable, "-m", "casemgr", "serve", "--port", str(port), "--workers", str(workers)],
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
    """One officer's stream until it is open (the status line and headers); ArrivalClock reads
    it after that."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.status: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.head = b""

    def data_received(self, data: bytes) -> None:
        if not self.status.done():
            self.head += data
            if b"\r\n\r\n" in self.head:
                self.status.set_result(self.head.partition(b"\r\n\r\n")[0])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status.done():
            self.status.set_result(b"")
        if not self.closed.done():
            self.closed.set_result(None)


async def stream(
    port: int,
    token: str,
    connections: list[tuple[asyncio.Transport, StreamClient]],
    ready: asyncio.Event,
    counter: list[int],
    total: int,
    retries: list[int],
) -> None:
    """One officer's stream; on 503 it waits the Retry-After and connects again, as browsers'
    EventSource does."""
    loop = asyncio.get_running_loop()
    while True:
        transport, client = await loop.create_connection(StreamClient, "127.0.0.1", port)
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
    connections.append((transport, client))
    counter[0] += 1
    if counter[0] == total:
        ready.set()
    try:
        await client.closed
    finally:
        transport.close()


# SO_TIMESTAMPING with software receive stamps (linux/net_tstamp.h): the kernel notes when each
# segment reached the socket, whatever the reading process is doing then.
SO_TIMESTAMPING = 37
_RX_SOFTWARE_STAMPS = (1 << 3) | (1 << 4)


class ArrivalClock(threading.Thread):
    """Reads every stream once they are all open, noting for each event both when it reached
    the client's socket (the kernel's receive stamp) and when this process got to read it.
    On two shared cores the load generator reading 10,000 sockets lags behind the server; an
    officer's browser, on its own machine, would not. Both figures are reported."""

    def __init__(self, connections: list[tuple[asyncio.Transport, StreamClient]]) -> None:
        super().__init__(daemon=True)
        self.arrivals: list[tuple[int, float, float]] = []  # alert id, at the socket, read
        self._stopping = threading.Event()
        self._sockets: dict[int, socket.socket] = {}
        self._pending: dict[int, bytes] = {}
        for transport, _client in connections:
            transport.pause_reading()  # from here on this thread reads the socket
            # The transport's own descriptor (a duplicate each would double the open files):
            # detached again at the end, so that the transport closes it.
            sock = socket.socket(fileno=transport.get_extra_info("socket").fileno())
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, _RX_SOFTWARE_STAMPS)
            sock.setblocking(False)
            self._sockets[sock.fileno()] = sock
            self._pending[sock.fileno()] = b""

    def run(self) -> None:
        poller = select.epoll()
        for fd in self._sockets:
            poller.register(fd, select.EPOLLIN)
        while not self._stopping.is_set():
            for fd, _ in poller.poll(0.1):
                try:
                    data, ancillary, _, _ = self._sockets[fd].recvmsg(65536, socket.CMSG_SPACE(48))
                except BlockingIOError:
                    continue
                read_at = time.time()
                at_socket = read_at
                for level, kind, stamp in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING:
                        seconds, nanoseconds = struct.unpack("ll", stamp[:16])
                        at_socket = seconds + nanoseconds / 1e9
                data = self._pending[fd] + data
                cut = data.rfind(b"\r\n\r\n") + 4
                self._pending[fd] = data[cut:] if cut >= 4 else data
                for match in _ALERT_ID.finditer(data, 0, cut if cut >= 4 else 0):
                    self.arrivals.append((int(match[1]), at_socket, read_at))
        poller.close()
        for sock in self._sockets.values():
            sock.detach()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)


async def drive(
    dsn: str, port: int, tokens: list[str], alerts: int, interval: float, city: int
) -> dict[str, object]:
    connections: list[tuple[asyncio.Transport, StreamClient]] = []
    ready = asyncio.Event()
    counter = [0]
    retries = [0]
    started = time.perf_counter()
    tasks = []
    for i, token in enumerate(tokens):
        tasks.append(
            asyncio.create_task(stream(port, token, connections, ready, counter, len(tokens), retries))
        )
        if i % 100 == 99:
            await asyncio.sleep(0.5)  # connect in waves, as officers log in
    await asyncio.wait_for(ready.wait(), timeout=600)
    connect_s = time.perf_counter() - started
    await asyncio.sleep(2)
    clock = ArrivalClock(connections)
    clock.start()
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
    clock.stop()
    for task in tasks:
        task.cancel()
    arrivals = [(a, at, read) for a, at, read in clock.arrivals if a in committed]
    latencies = [(at - committed[a]) * 1000 for a, at, _ in arrivals]
    read_latencies = [(read - committed[a]) * 1000 for a, _, read in arrivals]
    expected = len(tokens) * alerts
    by_alert: dict[int, list[float]] = {}
    for a, at, _ in arrivals:
        by_alert.setdefault(a, []).append((at - committed[a]) * 1000)
    return {
        "client_read_p50_ms": round(percentile(read_latencies, 0.5), 1) if read_latencies else None,
        "client_read_p99_ms": round(percentile(read_latencies, 0.99), 1) if read_latencies else None,
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (1: the one-process capacity figure)"
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.connections + 100:
        sys.exit(f"the open-files limit ({hard}) is below {args.connections} connections")
    dsn, city, tokens = asyncio.run(prepare(args.connections))
    port = free_port()
    server = start_server(dsn, port, args.workers)
    try:
        figures = uvloop.run(drive(dsn, port, tokens, args.alerts, args.interval, city))
        figures["server_rss_mb"] = largest_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {
        "benchmark": "alert_stream",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "connections": args.connections,
        "workers": args.workers,
        "alerts": args.alerts,
        "interval_s": args.interval,
        **figures,
    }
    table = "\n".join(
        [
            "| measure | figure | limit |",
            "|---|---|---|",
            f"| open streams, {args.workers} process(es) | {args.connections:,} (all connected in {figures['connect_s']} s, "
            f"{figures['connect_retries_after_503']} retries after 503) | 10,000 |",
            f"| deliveries | {figures['deliveries']:,} of {figures['expected']:,} | all |",
            f"| commit to event at the client's socket, p50 | {figures['p50_ms']} ms | |",
            f"| commit to event at the client's socket, p99 | {figures['p99_ms']} ms | ≤ 100 ms |",
            f"| commit to event at the client's socket, max | {figures['max_ms']} ms | |",
            f"| commit to event read by this client (p50 / p99) | {figures['client_read_p50_ms']} / "
            f"{figures['client_read_p99_ms']} ms | |",
            f"| server memory (RSS) | {figures['server_rss_mb']} MB | |",
        ]
    )
    name = f"alert-stream-{args.connections}c" + (f"-w{args.workers}" if args.workers > 1 else "")
    heading = (
        f"{args.connections:,} streams, {args.alerts} alerts {args.interval} s apart, "
        f"{'one worker' if args.workers == 1 else f'{args.workers} workers'}, "
        f"on {platform.node()} ({os.cpu_count()} CPUs), client on the same machine"
    )
    write_results(name, result, heading, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
