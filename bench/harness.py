"""How the benchmarks start servers and drive load: every server as casemgr serves its own
(casemgr.serving: uvicorn, uvloop, httptools, a SO_REUSEPORT socket per worker), and wrk with
the fleet's ping script (bench/wrk/pings.lua)."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis
from fleet import SECRET_SALT
from tracking.contract import Thresholds
from tracking.keys import KeySpace

# How many uploads a subject's zones need before their states are confirmed (the fleet's
# thresholds are the defaults): until then an upload moves every zone's state machine on.
SETTLING_UPLOADS = Thresholds().confirm_fixes

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(
    app: str,
    port: int,
    workers: int,
    env: dict[str, str],
    ready_path: str | None = None,
    cwd: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """Serve `app` as casemgr serves its own (casemgr.serving); with `ready_path`, wait until it
    answers 200 there (the tracking workers report ready once their device cache is loaded).
    `cwd` is the checkout served: `python -m` puts its working directory first on the path."""
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
        cwd=cwd,
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


@dataclass(frozen=True, slots=True)
class RedisServer:
    """A Redis of one fleet's own (start_redis)."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis() -> RedisServer:
    """A Redis on a free loopback port, set as the shared one of scripts/lib.sh is (no snapshot,
    no AOF), for one fleet alone: a fleet measured in a Redis that also holds the other fleets'
    keys is not measured on its own keyspace. In one Redis, a thousand subjects sat among 1.1
    million (bench/run of 2026-11-27) and the million's keyspace cost fell on both alike."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (bench/run installs it)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix=f"redis-{port}-")
    # fmt: off
    process = subprocess.Popen([
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
        "--save", "", "--appendonly", "no", "--logfile", os.path.join(workdir, "redis.log"),
    ])
    # fmt: on
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as client:
                client.ping()
            return RedisServer(process, port, workdir)
        except redis.ConnectionError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


def stop_redis(server: RedisServer) -> None:
    stop(server.process)
    shutil.rmtree(server.workdir, ignore_errors=True)


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


# A fix's time is its sequence number in seconds after a base this long before the fleet's
# first run; the fleet's orders started 40 days ago (bench/fleet.py). A device's numbers go on
# from run to run (pings.lua), so they stay small: a subject of a thousand reporting all through
# bench/run takes a few hundred thousand at most, a few days' worth.
FIX_TIME_BASE_AGO_S = 35 * 86_400


@dataclass(frozen=True, slots=True)
class _Walk:
    """Where a fleet's devices are between wrk runs: pings.lua's saved state, and the fixes'
    base time (fixed, so a device's fixes stay one second apart from run to run)."""

    state_dir: str
    base_s: int


# By the port that serves the fleet and the fleet's size: the servers of one benchmark run
# live as long as this process.
_walks: dict[tuple[int, int], _Walk] = {}


def _walk_of(port: int, subjects: int) -> _Walk:
    key = (port, subjects)
    if key not in _walks:
        state_dir = tempfile.mkdtemp(prefix=f"pings-{port}-{subjects}-")
        atexit.register(shutil.rmtree, state_dir, ignore_errors=True)
        _walks[key] = _Walk(state_dir, int(time.time()) - FIX_TIME_BASE_AGO_S)
    return _walks[key]


def wrk(
    port: int, subjects: int, batch: int, seconds: float, connections: int, *, sweep: bool = False
) -> dict[str, float]:
    """wrk with bench/wrk/pings.lua for `seconds`: uploads by every device of the fleet in turn,
    each thread its own share of the devices, each device's sequence numbers going on from the
    last run's; with `sweep`, stopped once every device has reported once (wrk itself would
    wait out its duration: each thread leaves a mark when done, and wrk is interrupted, which
    ends it as its duration would)."""
    walk = _walk_of(port, subjects)
    threads = os.cpu_count() or 1  # wrk's advice: a thread per core
    with tempfile.TemporaryDirectory() as marks:
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:.0f}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "wrk" / "pings.lua"),
            f"http://127.0.0.1:{port}",
            "--",
            str(subjects),
            str(batch),
            str(walk.base_s),
            SECRET_SALT,
            str(threads),
            walk.state_dir,
            *(["sweep", marks] if sweep else []),
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        if sweep:
            deadline = time.monotonic() + seconds
            while process.poll() is None and time.monotonic() < deadline:
                if len(os.listdir(marks)) >= threads:
                    process.send_signal(signal.SIGINT)
                    break
                time.sleep(0.2)
        output, _ = process.communicate()
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, command, output)
    highest = re.search(r"Highest sequence number: (\d+)", output)
    if highest is None:
        raise RuntimeError(f"pings.lua did not save where the devices are:\n{output}")
    if walk.base_s + int(highest[1]) > time.time():
        # The ingest refuses a fix in the future, and a refusal is a cheap reply: the rates
        # would be wrong, not low (seen when every run took numbers of its own).
        raise RuntimeError("the fleet's fix times reached the present: raise FIX_TIME_BASE_AGO_S")
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
        "latency_p50_ms": _wrk_latency_ms(output, "50%"),
        "latency_p99_ms": _wrk_latency_ms(output, "99%"),
    }


def cpu_times() -> tuple[int, int]:
    """(busy, all) jiffies of the machine's CPUs so far, from /proc/stat."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split()[1:9]
    )
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait + steal


def quiet(busy_below: float = 0.1, window_s: float = 0.5, timeout_s: float = 60.0) -> float:
    """Wait until the machine is idle (its CPUs less than `busy_below` busy over `window_s`), at
    most `timeout_s`; returns the seconds waited. So that what a phase leaves running (the PostGIS
    peer's PostgreSQL writing out its batches, a vacuum) is not charged to the next one; in the
    runs of 2026-11-26 no phase had to wait longer than the first half-second sample."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        busy_a, all_a = cpu_times()
        time.sleep(window_s)
        busy_b, all_b = cpu_times()
        if all_b > all_a and (busy_b - busy_a) / (all_b - all_a) < busy_below:
            break
    return round(time.monotonic() - started, 1)


def settle(port: int, subjects: int, connections: int, redis_url: str, keyspace: KeySpace) -> int:
    """Every subject of the fleet reports, one device after another, as many times as its zones
    need to confirm their states (SETTLING_UPLOADS): a fleet in its steady state, where an upload
    mostly confirms what the state already says. Once each is not enough: a million subjects
    measured after one sweep spent the rounds on every zone's second fix, the one that confirms
    it, while a thousand were long settled by their warm-up. After each sweep its pings are taken
    off the ping streams, as a persister that has caught up leaves them: two sweeps of a million
    would otherwise hold the streams over the ingest's backlog bound (503). Returns the uploads."""
    uploads = 0
    client = redis.Redis.from_url(redis_url)
    try:
        for _ in range(SETTLING_UPLOADS):
            swept = wrk(port, subjects, 1, 900, connections, sweep=True)
            if swept["non_2xx"]:
                raise RuntimeError(f"{swept['non_2xx']} settling uploads were refused")
            uploads += int(swept["requests"])
            for shard in keyspace.all_shards():
                # Exactly: an approximate trim takes at most 10,000 entries a call.
                client.xtrim(shard.pings, maxlen=0, approximate=False)
    finally:
        client.close()
    return uploads


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_latency_ms(output: str, quantile: str) -> float:
    """A line of wrk's "Latency Distribution" (--latency), e.g. "     99%    4.61ms"."""
    found = re.search(rf"^\s+{re.escape(quantile)}\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no {quantile} latency:\n{output}")
    return round(float(found[1]) * _UNIT_MS[found[2]], 2)


async def create_database(name: str) -> str:
    """A fresh database of that name on the server of DATABASE_URL; returns its URL."""
    admin = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(admin)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
