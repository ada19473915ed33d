"""SIGTERM under load: requests in flight complete, new ones are refused, the process exits
within 30 seconds, and nothing a device was told is queued has gone missing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from casemgr.monitoring.demo import DemoDevice
from tests.conftest import REDIS_URL
from tests.e2e.demo import seed_demo
from tests.e2e.test_process import env_for
from tests.e2e.test_process import fresh_database as fresh_database  # a fixture, used by name
from tests.servers import free_port, wait_ready

EXIT_WITHIN_S = 30


def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """`casemgr <args>`; a server is waited for until it reports ready."""
    process = subprocess.Popen([sys.executable, "-m", "casemgr", *args], env=env)
    if "--port" in args:
        wait_ready(int(args[args.index("--port") + 1]))
    return process


@pytest.fixture
def seeded(fresh_database: str, tmp_path: Path) -> tuple[dict[str, str], list[DemoDevice]]:
    env = env_for(
        fresh_database,
        CASEMGR_ENV="demo",
        CASEMGR_MFA_REQUIRED="false",
        CASEMGR_LOG_LEVEL="WARNING",
        CASEMGR_TRACKING_NAMESPACE=f"sigterm{os.getpid()}{time.monotonic_ns() % 10**6}",
        CASEMGR_TRACKING_SHARDS="4",
        # One test client is one address: it must not be what stops the load.
        CASEMGR_RATE_LIMIT_PER_ADDRESS_PER_MINUTE="0",
        CASEMGR_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE="0",
        CASEMGR_TRACKING_DEVICE_UPLOADS_PER_MINUTE="0",
    )
    _, devices = seed_demo(env, tmp_path, people=200, monitored=8)
    return env, devices


class Load:
    """Clients that send requests back to back, each on a connection of its own, and keep
    what came of every request: a status, or the transport error that ended it."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.stop = asyncio.Event()

    async def run(self, clients: int, request: object) -> None:
        async def client(n: int) -> None:
            async with httpx.AsyncClient(timeout=EXIT_WITHIN_S) as http:
                while not self.stop.is_set():
                    try:
                        response = await request(http, n)  # type: ignore[operator]
                        self.outcomes[str(response.status_code)] += 1
                    except httpx.ConnectError:
                        self.outcomes["refused"] += 1
                        await asyncio.sleep(0.05)
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        # A kept-alive connection the server closed as idle just as the next
                        # request went out (closed, or reset as it held unread bytes): that request
                        # was never read, which the ingest test proves from the queue.
                        self.outcomes["closed-idle"] += 1
                        await asyncio.sleep(0.05)
                    except httpx.TransportError as e:
                        self.outcomes[type(e).__name__] += 1
                        await asyncio.sleep(0.05)

        await asyncio.gather(*(client(n) for n in range(clients)))


async def sigterm_under_load(
    process: subprocess.Popen[bytes], load: Load, clients: int, request: object
) -> float:
    """Loads the server, sends SIGTERM after a second, and returns how long it took to exit."""
    running = asyncio.create_task(load.run(clients, request))
    await asyncio.sleep(1.0)
    assert load.outcomes, "no request was answered before SIGTERM"
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(process.wait, EXIT_WITHIN_S + 5)
    took = time.monotonic() - started
    await asyncio.sleep(0.5)  # requests sent after the exit are refused
    load.stop.set()
    await running
    if process.poll() is None:
        process.kill()
    return took


async def test_the_ingest_drains_on_sigterm_and_every_acknowledged_ping_is_queued(
    seeded: tuple[dict[str, str], list[DemoDevice]],
) -> None:
    env, devices = seeded
    port = free_port()
    server = await asyncio.to_thread(start, env, "tracking", "serve", "--port", str(port), "--workers", "2")
    acknowledged: Counter[str] = Counter()
    seqs = dict.fromkeys((d.device_id for d in devices), 0)

    async def upload(http: httpx.AsyncClient, n: int) -> httpx.Response:
        device = devices[n % len(devices)]
        batch = []
        for _ in range(10):
            seqs[device.device_id] += 1
            batch.append(
                {
                    "device_id": device.device_id,
                    "seq": seqs[device.device_id],
                    "fix_time": datetime.now(UTC).isoformat(),
                    "longitude": device.home[0],
                    "latitude": device.home[1],
                    "accuracy_m": 8.0,
                }
            )
        response = await http.post(
            f"http://127.0.0.1:{port}/v1/pings",
            content=msgspec.json.encode(batch),
            headers={
                "X-Device-Id": device.device_id,
                "Authorization": f"Bearer {device.secret}",
                "Content-Type": "application/json",
            },
        )
        if response.status_code == 202:
            acknowledged[device.device_id] += response.json()["accepted"]
        return response

    load = Load()
    took = await sigterm_under_load(server, load, len(devices), upload)
    print(f"\ningest: {dict(load.outcomes)}; exited {took:.1f} s after SIGTERM")
    assert took <= EXIT_WITHIN_S
    assert server.returncode == 0
    assert load.outcomes["202"] > 0 and load.outcomes["refused"] > 0
    # Nothing but 202 or a connection refused or closed unused: no 5xx, no request cut off halfway.
    assert set(load.outcomes) <= {"202", "refused", "closed-idle"}, load.outcomes
    # Every ping the devices were told is queued, is on the ping streams.
    redis = Redis.from_url(REDIS_URL)
    try:
        queued: Counter[str] = Counter()
        async for key in redis.scan_iter(match=f"{env['CASEMGR_TRACKING_NAMESPACE']}:*:pings"):
            for _, fields in await redis.xrange(key):
                queued[fields[b"dev"].decode()] += len(msgspec.msgpack.decode(fields[b"d"]))
        assert queued == acknowledged
    finally:
        async for key in redis.scan_iter(match=f"{env['CASEMGR_TRACKING_NAMESPACE']}:*"):
            await redis.delete(key)
        await redis.aclose()


async def test_casemgr_drains_on_sigterm_and_exits_in_time(
    seeded: tuple[dict[str, str], list[DemoDevice]],
) -> None:
    env, _ = seeded
    port = free_port()
    server = await asyncio.to_thread(start, env, "serve", "--port", str(port), "--workers", "2")
    async with httpx.AsyncClient(timeout=10) as http:
        login = await http.post(
            f"http://127.0.0.1:{port}/auth/login",
            json={"username": "officer.riverside", "password": "demo-password-2026"},
        )
    headers = {"Authorization": f"Bearer {login.json()['token']}"}

    async def caseload(http: httpx.AsyncClient, n: int) -> httpx.Response:
        return await http.get(f"http://127.0.0.1:{port}/cases?limit=50", headers=headers)

    load = Load()
    took = await sigterm_under_load(server, load, 8, caseload)
    print(f"\ncasemgr: {dict(load.outcomes)}; exited {took:.1f} s after SIGTERM")
    assert took <= EXIT_WITHIN_S
    assert server.returncode == 0
    assert load.outcomes["200"] > 0 and load.outcomes["refused"] > 0
    assert set(load.outcomes) <= {"200", "refused", "closed-idle"}, load.outcomes


async def test_the_tracking_workers_stop_within_30_s_of_sigterm(
    seeded: tuple[dict[str, str], list[DemoDevice]],
) -> None:
    env, _ = seeded
    workers = await asyncio.to_thread(start, env, "tracking", "workers")
    await asyncio.sleep(3)  # past start-up: groups made, the watchdog ticking
    assert workers.poll() is None
    workers.send_signal(signal.SIGTERM)
    started = time.monotonic()
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(workers.wait, EXIT_WITHIN_S + 5)
    took = time.monotonic() - started
    if workers.poll() is None:
        workers.kill()
    assert took <= EXIT_WITHIN_S
    assert workers.returncode == 0
