"""Benchmark: alerts pushed to officers' live streams (Server-Sent Events).

Starts the real service (`casemgr serve`, one worker unless --workers) and the tracking
workers (`casemgr tracking workers`, whose alert sink writes the tracking core's alerts into
PostgreSQL) on a private database, opens --connections streams in one client process (each its
own session), then puts --alerts alerts one by one, --interval apart, on the tracking core's
alert streams, as the ingest script does (a strap cut on a monitored subject of an office),
and takes for every stream that may see an alert the time from the alert's XADD to the event's
arrival at the client's socket (the kernel's receive stamp, SO_TIMESTAMPING), and to this
client's reading it (which on two shared cores lags behind the server). The path measured is
the whole of it: the sink's read and insert, PostgreSQL's notification, the feed, the write.
Limits: p99 at most 100 ms; one process holds 10,000 open streams. Prints the figures and
writes them to bench/results/.

Who holds the streams (--scopes):
  tree  the bureau's shape: a city of 20 districts of 25 offices, a monitored case in each;
        each stream is its own account: officers of an office (who see their office's alerts),
        one office head per office, 10 supervisors per district and 20 at the city (per 10,000
        streams). Each alert is of an office drawn at random and reaches the streams whose scope
        holds it, about 50 of 10,000: the officer's question, "how soon does my alert reach me".
  city  every stream a city-level supervisor's, so every alert goes to all of them: the worst
        fan-out a process can be given (its floor is bench/socket_writes.py).

    .venv/bin/python bench/alert_stream.py                         # 10,000 streams, tree, 200 alerts
    .venv/bin/python bench/alert_stream.py --scopes city           # 10,000 streams, each alert to all
    .venv/bin/python bench/alert_stream.py --connections 1000      # a quick look

Needs the PostgreSQL and Redis of scripts/lib.sh. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import re
import resource
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import uvloop
from redis.asyncio import Redis
from reporting import facts, largest_rss_mb, machine, percentile, write_results
from tracking.keys import KeySpace

from casemgr.auth.principal import MfaState, Role
from casemgr.auth.sessions import SessionStore
from casemgr.clock import SystemClock
from casemgr.migrate import apply_migrations

ROOT = Path(__file__).resolve().parents[1]
ADMIN = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE = "casemgr_bench_stream"
NAMESPACE = "benchstream"
DISTRICTS = 20
OFFICES_PER_DISTRICT = 25


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Office:
    unit: int
    path: str
    case: int
    order: int


@dataclass(frozen=True)
class Audience:
    """Who holds the streams: one (role, unit, path) per stream, and the offices alerts come from."""

    streams: list[tuple[Role, int, str]]
    offices: list[Office]

    def reached_by(self, path: str) -> int:
        """How many streams may see an alert of the unit at ``path`` (the feed's rule: the
        caller's scope holds the path)."""
        return sum(1 for _, _, scope in self.streams if path == scope or path.startswith(scope + "."))


async def _unit(
    conn: asyncpg.Connection, parent: int | None, kind: str, name: str, code: str
) -> tuple[int, str]:
    unit: int = await conn.fetchval(
        "INSERT INTO org_units (parent_id, kind, name, code, path) VALUES ($1, $2, $3, $4, 'n0') RETURNING id",
        parent,
        kind,
        name,
        code,
    )
    path: str = await conn.fetchval(
        "UPDATE org_units AS u SET path = (CASE WHEN u.parent_id IS NULL THEN '' "
        "ELSE (SELECT p.path::text || '.' FROM org_units AS p WHERE p.id = u.parent_id) END "
        "|| 'n' || u.id)::ltree WHERE u.id = $1 RETURNING u.path::text",
        unit,
    )
    return unit, path


async def _monitored_case(conn: asyncpg.Connection, unit: int, path: str) -> Office:
    """A community-corrections case of the office under an active monitoring order (its officer
    asked, the office head approved), which the tracking core's alerts name."""
    account = (
        "INSERT INTO accounts (username, display_name, role, org_unit_id, password_hash) "
        "VALUES ($1, 'bench', $2, $3, 'x') RETURNING id"
    )
    officer = await conn.fetchval(account, f"bench.u{unit}.officer", "officer", unit)
    head = await conn.fetchval(account, f"bench.u{unit}.head", "supervisor", unit)
    person = await conn.fetchval(
        "INSERT INTO persons (full_name, sex, birth_date, org_unit_id) VALUES ($1, 'male', '1980-01-01', $2) "
        "RETURNING id",
        f"Bench Person {unit}",
        unit,
    )
    case = await conn.fetchval(
        "INSERT INTO cases (person_id, program, status, org_unit_id, officer_id) "
        "VALUES ($1, 'community_corrections', 'active', $2, $3) RETURNING id",
        person,
        unit,
        officer,
    )
    order = await conn.fetchval(
        "INSERT INTO monitoring_orders (case_id, reason_code, legal_basis, assessment_ref, status, "
        "requested_by, requested_at, decided_by, decided_at, starts_at, first_ends_at, ends_at) "
        "VALUES ($1, 'court_curfew', 'judgment 1', 'assessment 1', 'active', $2, now(), $3, now(), "
        "now() - interval '1 day', now() + interval '60 days', now() + interval '60 days') RETURNING id",
        case,
        officer,
        head,
    )
    return Office(unit=unit, path=path, case=case, order=order)


def _holders(
    connections: int, city: tuple[int, str], districts: list[tuple[int, str]], offices: list[tuple[int, str]]
) -> list[tuple[Role, int, str]]:
    """Stream i's holder in the bureau's shape: per 10,000 streams 20 at the city, 10 per
    district, one head per office, the rest officers spread over the offices."""
    holders = []
    for i in range(connections):
        if i % 500 == 0:
            holders.append((Role.SUPERVISOR, *city))
        elif i % 50 == 1:
            holders.append((Role.SUPERVISOR, *districts[(i // 50) % len(districts)]))
        elif i % 20 == 2:
            holders.append((Role.SUPERVISOR, *offices[(i // 20) % len(offices)]))
        else:
            holders.append((Role.OFFICER, *offices[i % len(offices)]))
    return holders


async def prepare(connections: int, scopes: str) -> tuple[str, Audience, list[str]]:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    await admin.close()
    dsn = with_database(ADMIN, DATABASE)
    await apply_migrations(dsn)
    conn = await asyncpg.connect(dsn)
    city = await _unit(conn, None, "city", "Bench City", "BENCH")
    districts, units = [], []
    for d in range(DISTRICTS):
        district = await _unit(conn, city[0], "district", f"District {d}", f"D{d}")
        districts.append(district)
        for o in range(OFFICES_PER_DISTRICT):
            units.append(await _unit(conn, district[0], "office", f"Office {d}-{o}", f"D{d}-O{o}"))
    offices = [await _monitored_case(conn, unit, path) for unit, path in units]
    if scopes == "city":
        audience = Audience(streams=[(Role.SUPERVISOR, *city)] * connections, offices=offices)
    else:
        audience = Audience(streams=_holders(connections, city, districts, units), offices=offices)
    # One account per stream, as officers each log in for themselves.
    accounts = await conn.fetch(
        "INSERT INTO accounts (username, display_name, role, org_unit_id, password_hash) "
        "SELECT 'bench.' || n, 'bench ' || n, r::account_role, u, 'x' "
        "FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS t(r, u, n) ORDER BY n RETURNING id",
        [role.value for role, _, _ in audience.streams],
        [unit for _, unit, _ in audience.streams],
    )
    await conn.close()
    redis = Redis.from_url(REDIS_URL)
    sessions = SessionStore(
        redis, SystemClock(), idle_seconds=3600, absolute_seconds=7200, pending_seconds=60
    )
    tokens = [
        (
            await sessions.issue(
                account_id=account["id"], role=role, org_unit_id=unit, scope=scope, mfa=MfaState.PASSED
            )
        ).token
        for account, (role, unit, scope) in zip(accounts, audience.streams, strict=True)
    ]
    await redis.aclose()
    return dsn, audience, tokens


def service_env(dsn: str) -> dict[str, str]:
    return {
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
        "CASEMGR_TRACKING_NAMESPACE": NAMESPACE,
    }


def start_tracking_workers(dsn: str) -> subprocess.Popen[bytes]:
    """The tracking workers, whose alert sink carries alerts from the streams into PostgreSQL;
    returns once its consumer group is on every alert stream."""
    process = subprocess.Popen(
        [sys.executable, "-m", "casemgr", "tracking", "workers"],
        env=service_env(dsn),
        stdout=subprocess.DEVNULL,
    )
    last = KeySpace(namespace=NAMESPACE).all_shards()[-1].alerts

    async def groups() -> int:
        redis = Redis.from_url(REDIS_URL)
        try:
            return len(await redis.xinfo_groups(last)) if await redis.exists(last) else 0
        finally:
            await redis.aclose()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if asyncio.run(groups()):
            return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the tracking workers did not start")


def start_server(dsn: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    def raise_file_limit() -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    process = subprocess.Popen(
        [sys.executable, "-m", "casemgr", "serve", "--port", str(port), "--workers", str(workers)],
        env=service_env(dsn),
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
    dsn: str, port: int, tokens: list[str], alerts: int, interval: float, audience: Audience
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
    redis = Redis.from_url(REDIS_URL)
    keyspace = KeySpace(namespace=NAMESPACE)
    sent: dict[str, float] = {}  # event id: when its XADD was sent
    draw = random.Random(20261126)
    expected = 0
    run = int(time.time())
    for n in range(alerts):
        office = draw.choice(audience.offices)
        device = f"BENCH-{office.order}"
        event_id = f"{office.order}:strap_tamper::{run}{n:06d}"
        now_ms = str(int(time.time() * 1000))
        sent[event_id] = time.time()
        # The fields the ingest script's emit() writes (tracking/scripts/common.lua).
        await redis.xadd(
            keyspace.device(device).shard.alerts,
            {
                "id": event_id, "kind": "strap_tamper", "sev": "critical", "act": "raise", "dev": device,
                "ord": str(office.order), "case": str(office.case), "unit": str(office.unit), "zone": "",
                "fixes": str(n), "at": now_ms, "rx": now_ms, "via": "",
            },
        )  # fmt: skip
        expected += audience.reached_by(office.path)
        await asyncio.sleep(interval)
    await asyncio.sleep(3)
    await redis.aclose()
    conn = await asyncpg.connect(dsn)
    sent_at = {
        row["id"]: sent[row["event_id"]]
        for row in await conn.fetch(
            "SELECT id, event_id FROM alerts WHERE event_id = ANY($1::text[])", list(sent)
        )
    }
    await conn.close()
    clock.stop()
    for task in tasks:
        task.cancel()
    arrivals = [(a, at, read) for a, at, read in clock.arrivals if a in sent_at]
    latencies = [(at - sent_at[a]) * 1000 for a, at, _ in arrivals]
    read_latencies = [(read - sent_at[a]) * 1000 for a, _, read in arrivals]
    by_alert: dict[int, list[float]] = {}
    for a, at, _ in arrivals:
        by_alert.setdefault(a, []).append((at - sent_at[a]) * 1000)
    return {
        "client_read_p50_ms": round(percentile(read_latencies, 0.5), 1) if read_latencies else None,
        "client_read_p99_ms": round(percentile(read_latencies, 0.99), 1) if read_latencies else None,
        # In the order sent: [p50, p99, count] of each alert's deliveries.
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
    parser.add_argument(
        "--scopes", choices=("tree", "city"), default="tree", help="who holds the streams (above)"
    )
    parser.add_argument("--alerts", type=int, help="default: 200 (tree), 20 (city)")
    parser.add_argument(
        "--interval", type=float, help="seconds between alerts; default: 0.05 (tree), 0.5 (city)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (1: the one-process capacity figure)"
    )
    args = parser.parse_args()
    tree = args.scopes == "tree"
    if args.alerts is None:
        args.alerts = 200 if tree else 20
    if args.interval is None:
        args.interval = 0.05 if tree else 0.5
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.connections + 100:
        sys.exit(f"the open-files limit ({hard}) is below {args.connections} connections")
    dsn, audience, tokens = asyncio.run(prepare(args.connections, args.scopes))
    port = free_port()
    sink = start_tracking_workers(dsn)
    server = start_server(dsn, port, args.workers)
    try:
        figures = uvloop.run(drive(dsn, port, tokens, args.alerts, args.interval, audience))
        figures["server_rss_mb"] = largest_rss_mb(server.pid)
    finally:
        for process in (server, sink):
            process.terminate()
            process.wait(timeout=30)
    result = {
        **facts("alert_stream"),
        "connections": args.connections,
        "scopes": args.scopes,
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
            f"| alert on the stream to event at the client's socket, p50 | {figures['p50_ms']} ms | |",
            f"| alert on the stream to event at the client's socket, p99 | {figures['p99_ms']} ms | ≤ 100 ms |",
            f"| alert on the stream to event at the client's socket, max | {figures['max_ms']} ms | |",
            f"| alert on the stream to event read by this client (p50 / p99) | {figures['client_read_p50_ms']} / "
            f"{figures['client_read_p99_ms']} ms | |",
            f"| server memory (RSS) | {figures['server_rss_mb']} MB | |",
        ]
    )
    name = f"alert-stream-{args.connections}c-{args.scopes}" + (
        f"-w{args.workers}" if args.workers > 1 else ""
    )
    who = (
        f"held by officers and supervisors of {DISTRICTS * OFFICES_PER_DISTRICT} offices (each alert to "
        f"{figures['expected'] / args.alerts:.0f} streams on average)"
        if tree
        else "all city-level supervisors (each alert to every stream)"
    )
    heading = (
        f"{args.connections:,} streams {who}, {args.alerts} alerts {args.interval} s apart, "
        f"{'one worker' if args.workers == 1 else f'{args.workers} workers'}, "
        f"on {machine()}, client on the same machine"
    )
    write_results(name, result, heading, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
