"""Faults under load: nothing acknowledged is lost.

A fleet uploads 2,000 pings a second to the ingest (two workers) while the test kills with
SIGKILL, in turn, the tracking workers (persister, alert sink, watchdog), Redis (AOF, appendfsync
everysec, as in production) and PostgreSQL, starting each again, and one ingest worker (its
server starts another). Devices behave as devices do: what was not answered with 202 is kept and
sent again. Afterwards every acknowledged (device, sequence number) is in PostgreSQL exactly
once, and every strap cut that was acknowledged raised exactly one alert.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from casemgr.monitoring.demo import DemoDevice
from tests.e2e.demo import seed_demo
from tests.e2e.test_process import env_for
from tests.servers import (
    PrivatePostgres,
    PrivateRedis,
    free_port,
    private_postgres,
    private_redis,
    wait_ready,
)

PINGS_PER_S = 2000
DEVICES = 20
PER_UPLOAD = 10
CUTTERS = 5  # the first devices cut their strap at this sequence number, and it stays cut
CUT_AT = 40
MAX_UPLOAD = 1000


def server_workers(pid: int) -> list[int]:
    """The worker processes of a casemgr server (not multiprocessing's resource tracker)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        cmdline = status.with_name("cmdline")
        if fields.get("PPid", "").strip() == str(pid) and b"spawn_main" in cmdline.read_bytes():
            found.append(int(status.parent.name))
    return found


@dataclass
class Fleet:
    """Devices that keep every ping until it is acknowledged, and resend it."""

    url: str
    devices: list[DemoDevice]
    generating: bool = True
    stopped: bool = False
    seqs: dict[str, int] = field(default_factory=dict)
    unacknowledged: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sent: set[tuple[str, int]] = field(default_factory=set)
    acknowledged: set[tuple[str, int]] = field(default_factory=set)
    refusals: int = 0

    def next_pings(self, device: DemoDevice) -> list[dict[str, Any]]:
        pings = []
        for _ in range(PER_UPLOAD):
            seq = self.seqs[device.device_id] = self.seqs.get(device.device_id, 0) + 1
            cut = self.devices.index(device) < CUTTERS and seq >= CUT_AT
            pings.append(
                {
                    "device_id": device.device_id,
                    "seq": seq,
                    "fix_time": datetime.now(UTC).isoformat(),
                    "longitude": device.home[0],
                    "latitude": device.home[1],
                    "accuracy_m": 8.0,
                    "strap_state": "cut" if cut else "intact",
                }
            )
            self.sent.add((device.device_id, seq))
        return pings

    async def run_device(self, device: DemoDevice, http: httpx.AsyncClient) -> None:
        period = DEVICES * PER_UPLOAD / PINGS_PER_S
        kept = self.unacknowledged.setdefault(device.device_id, [])
        next_at = time.monotonic()
        while not self.stopped and (self.generating or kept):
            if self.generating:
                # A device fixes its position on its own clock, whatever its uploads meet: the
                # ticks that passed while the last upload was under way add their pings too (on a
                # slow machine the load otherwise fell short of its rate when uploads slowed).
                due = 1 + int((time.monotonic() - next_at) / period)
                for _ in range(due):
                    kept.extend(self.next_pings(device))
                next_at += (due - 1) * period
            batch = kept[:MAX_UPLOAD]
            try:
                response = await http.post(
                    f"{self.url}/v1/pings",
                    content=msgspec.json.encode(batch),
                    headers={
                        "X-Device-Id": device.device_id,
                        "Authorization": f"Bearer {device.secret}",
                        "Content-Type": "application/json",
                    },
                )
                if response.status_code == 202:
                    self.acknowledged.update((device.device_id, p["seq"]) for p in batch)
                    del kept[: len(batch)]
                else:
                    self.refusals += 1
            except httpx.TransportError:
                self.refusals += 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            await asyncio.gather(*(self.run_device(d, http) for d in self.devices))


@dataclass
class Rig:
    env: dict[str, str]
    redis: PrivateRedis
    postgres: PrivatePostgres
    devices: list[DemoDevice]
    workdir: Path


@pytest.fixture
def rig(tmp_path: Path) -> Any:
    with private_postgres() as postgres, private_redis(tmp_path, appendfsync="everysec") as redis:
        env = env_for(
            postgres.url,
            REDIS_URL=redis.url,
            CASEMGR_ENV="demo",
            CASEMGR_MFA_REQUIRED="false",
            CASEMGR_LOG_LEVEL="WARNING",
            CASEMGR_TRACKING_SHARDS="8",
            CASEMGR_TRACKING_DEVICE_UPLOADS_PER_MINUTE="0",
            # A killed persister's entries are taken over by its successor after this long.
            CASEMGR_TRACKING_RECLAIM_IDLE_SECONDS="2",
        )
        _, devices = seed_demo(env, tmp_path, people=400, monitored=DEVICES)
        assert len(devices) == DEVICES
        yield Rig(env, redis, postgres, devices, tmp_path)


def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "casemgr", *args], env=env)


async def test_no_acknowledged_ping_is_lost_when_every_part_is_killed_under_load(rig: Rig) -> None:
    port = free_port()
    ingest = await asyncio.to_thread(
        start, rig.env, "tracking", "serve", "--port", str(port), "--workers", "2"
    )
    workers = start(rig.env, "tracking", "workers")
    try:
        await asyncio.to_thread(wait_ready, port)
        served_since = time.monotonic()
        fleet = Fleet(f"http://127.0.0.1:{port}", rig.devices)
        load = asyncio.create_task(fleet.run())
        load_started = time.monotonic()
        faults: list[str] = []

        async def after(seconds: float) -> None:
            await asyncio.sleep(seconds)
            assert not load.done(), load

        await after(2)
        workers.send_signal(signal.SIGKILL)
        workers.wait()
        faults.append("tracking workers (persister, alert sink, watchdog)")
        await after(1)
        workers = start(rig.env, "tracking", "workers")

        await after(2)
        await asyncio.to_thread(rig.redis.kill)
        faults.append("Redis")
        await after(1)
        await asyncio.to_thread(rig.redis.start)

        await after(2)
        await asyncio.to_thread(rig.postgres.stop, "immediate")
        faults.append("PostgreSQL")
        await after(1)
        await asyncio.to_thread(rig.postgres.start)

        # The server takes a worker that dies within its first 10 s for a failed start.
        await asyncio.sleep(max(0.0, 11 - (time.monotonic() - served_since)))
        victim = sorted(server_workers(ingest.pid))[0]
        os.kill(victim, signal.SIGKILL)
        faults.append("an ingest worker")
        await after(3)
        assert ingest.poll() is None and len(server_workers(ingest.pid)) == 2  # its server started another

        fleet.generating = False  # devices now only send what they still hold
        generated_for = time.monotonic() - load_started
        try:
            await asyncio.wait_for(asyncio.shield(load), 30)
        except TimeoutError:
            fleet.stopped = True
            await load
        stored, duplicated, alerts = await settled(rig, fleet)
    finally:
        for process in (ingest, workers):
            process.terminate()
        for process in (ingest, workers):
            process.wait(timeout=30)

    lost = fleet.acknowledged - stored
    print(
        f"\nkilled in turn: {', '.join(faults)}\n"
        f"sent {len(fleet.sent):,} pings ({len(fleet.sent) / generated_for:,.0f}/s), acknowledged "
        f"{len(fleet.acknowledged):,}, stored {len(stored):,}, lost {len(lost):,}, duplicated "
        f"{duplicated:,}; uploads refused or cut "
        f"off (and sent again) {fleet.refusals:,}; strap_tamper alerts {alerts}"
    )
    assert len(fleet.sent) / generated_for >= 0.95 * PINGS_PER_S
    assert fleet.refusals > 0, "no fault was felt: the test proves nothing"
    assert not fleet.unacknowledged or not any(fleet.unacknowledged.values())
    assert fleet.acknowledged == fleet.sent
    assert not lost
    assert duplicated == 0
    cutters = {d.device_id for d in rig.devices[:CUTTERS]}
    assert alerts == dict.fromkeys(sorted(cutters), 1)


async def settled(rig: Rig, fleet: Fleet) -> tuple[set[tuple[str, int]], int, dict[str, int]]:
    """Waits for the persister and the alert sink to catch up; returns what PostgreSQL holds."""
    conn = await asyncpg.connect(rig.postgres.url)
    try:
        deadline = time.monotonic() + 60
        while True:
            rows = await conn.fetch("SELECT device_id, seq FROM pings")
            stored = {(r["device_id"], r["seq"]) for r in rows}
            alerts = await conn.fetch(
                "SELECT details ->> 'device_id' AS device, count(*) AS n FROM alerts "
                "WHERE kind = 'strap_tamper' GROUP BY 1 ORDER BY 1"
            )
            caught_up = fleet.acknowledged <= stored and len(alerts) >= CUTTERS
            if caught_up or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        return stored, len(rows) - len(stored), {r["device"]: r["n"] for r in alerts}
    finally:
        await conn.close()
