"""The service as a process: the command line, JSON logs, and shutdown on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from casemgr.people.id_number import birth_date_part, is_male, is_valid
from tests.conftest import DATA_KEY, REDIS_URL, World, create_empty_database, drop_database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# The tracking namespaces the servers of this run were given: tests/e2e/conftest.py removes
# their keys from the shared Redis when the run ends.
SERVER_NAMESPACES: set[str] = set()


def env_for(database_url: str, **extra: str) -> dict[str, str]:
    if "CASEMGR_TRACKING_NAMESPACE" in extra:
        SERVER_NAMESPACES.add(extra["CASEMGR_TRACKING_NAMESPACE"])
    return {
        **os.environ,
        "CASEMGR_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "CASEMGR_DATA_KEYS": DATA_KEY,
        "CASEMGR_ARGON2_TIME_COST": "1",
        "CASEMGR_ARGON2_MEMORY_KIB": "1024",
        "CASEMGR_LOG_FORMAT": "json",
        # Every test client is one address, and the suite's processes share one Redis: the
        # limits have tests of their own (tests/integration/test_rate_limits.py).
        "CASEMGR_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0",
        "CASEMGR_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE": "0",
        "CASEMGR_RATE_LIMIT_LOGINS_PER_ADDRESS_PER_MINUTE": "0",
        **extra,
    }


def casemgr(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casemgr", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
async def fresh_database():  # type: ignore[no-untyped-def]
    dsn = await create_empty_database()
    yield dsn
    await drop_database(dsn)


async def test_the_command_line_migrates_seeds_creates_an_admin_and_verifies_the_audit(
    fresh_database: str, tmp_path: Path
) -> None:
    # The demo's tracking keys go to a namespace of this test's own.
    env = env_for(fresh_database, CASEMGR_TRACKING_NAMESPACE=f"e2e{os.getpid()}", CASEMGR_TRACKING_SHARDS="4")
    first = casemgr(env, "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 5 migration(s)" in first.stdout or "applied" in first.stdout
    assert "applied 0 migration(s)" in casemgr(env, "migrate").stdout
    devices_file = tmp_path / "devices.json"
    seeded = casemgr(env, "seed-demo", "--people", "400", "--devices-file", str(devices_file))
    assert seeded.returncode == 0 and "officer.riverside" in seeded.stdout
    assert "monitored subjects" in seeded.stdout and "published" in seeded.stdout
    assert devices_file.stat().st_mode & 0o077 == 0  # the devices' secrets: the owner's alone
    conn = await asyncpg.connect(fresh_database)
    try:
        people = await conn.fetch("SELECT full_name, name_pinyin, id_number, sex, birth_date FROM persons")
        programs = {r[0] for r in await conn.fetch("SELECT DISTINCT program::text FROM cases")}
        contacts = await conn.fetchval("SELECT count(*) FROM case_contacts")
        open_tasks = await conn.fetchval("SELECT count(*) FROM tasks WHERE status = 'open'")
        done_tasks = await conn.fetchval("SELECT count(*) FROM tasks WHERE status = 'done'")
        sealed = await conn.fetchval("SELECT count(*) FROM cases WHERE sealed_details IS NOT NULL")
    finally:
        await conn.close()
    assert len(people) == 400 and all(is_valid(p["id_number"]) and p["name_pinyin"] for p in people)
    # Each ID number carries its person's birth date and sex, as registration demands.
    assert all(
        birth_date_part(p["id_number"]) == p["birth_date"].strftime("%Y%m%d")
        and is_male(p["id_number"]) == (p["sex"] == "male")
        for p in people
    )
    assert all("\u4e00" <= p["full_name"][0] <= "\u9fff" for p in people)  # Chinese names
    assert programs == {"community_corrections", "released_prisoner", "drug_rehab", "severe_mental_illness"}
    assert contacts > 400 * 5 and open_tasks > 400 and done_tasks > 0 and sealed > 0
    assert "already present" in casemgr(env, "seed-demo").stdout
    admin = casemgr(
        env,
        "create-admin",
        "--username",
        "root.admin",
        "--org-unit",
        "HQ",
        "--city-name",
        "Head Quarters City",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert admin.returncode == 0, admin.stdout + admin.stderr
    weak = casemgr(
        env,
        "create-admin",
        "--username",
        "weak.admin",
        "--org-unit",
        "HQ",
        "--password-stdin",
        stdin="short\n",
    )
    assert weak.returncode == 2 and "at least" in weak.stderr
    intact = casemgr(env, "audit", "verify")
    assert intact.returncode == 0 and "audit chain intact" in intact.stdout
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute("UPDATE audit_log SET reason = 'forged' WHERE id = 7")
    finally:
        await conn.close()
    broken = casemgr(env, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at row 7" in broken.stdout


@pytest.fixture
def server(database_url: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "casemgr", "serve", "--port", str(port)],
        env=env_for(database_url, CASEMGR_SHUTDOWN_GRACE_SECONDS="10"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        process.wait()
        pytest.fail("the server did not become ready: " + (process.stdout.read() if process.stdout else ""))
    yield process, port
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def test_sigterm_finishes_the_request_in_flight_refuses_new_ones_and_closes_the_pools(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = server
    body = json.dumps({"username": "nobody.at.all", "password": "not the password"}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        # Half a request: headers and part of the body. Then the signal.
        conn.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"X-Request-ID: inflight-0001\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10]
        )
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        conn.sendall(body[10:])
        response = conn.recv(65536).decode()
    assert response.startswith("HTTP/1.1 401"), response
    assert "application/problem+json" in response
    # uvicorn re-raises the signal once shut down, so the parent sees "ended by SIGTERM".
    assert process.wait(timeout=15) in (0, -signal.SIGTERM)
    assert process.stdout is not None
    lines = [json.loads(line) for line in process.stdout.read().splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert "service_stopped" in events
    finished = [
        line
        for line in lines
        if line["event"] == "request_finished" and line.get("request_id") == "inflight-0001"
    ]
    assert finished and finished[0]["status"] == 401 and finished[0]["route"] == "/auth/login"


async def test_the_alert_stream_delivers_over_real_http_from_the_last_event_id(
    server: tuple[subprocess.Popen[str], int], owner: asyncpg.Connection, world: World, login_as: Any
) -> None:
    _, port = server
    headers = await login_as("sup_city")  # a session in the shared Redis, which the server reads
    start = await owner.fetchval("SELECT last_id FROM alert_change_head")
    alert_id = await owner.fetchval(
        "INSERT INTO alerts (kind, severity, org_unit_id, case_id, raised_at, details, dedupe_key) "
        "VALUES ('no_signal', 'serious', $1, $2, now(), '{}', $3) RETURNING id",
        world.units["c1"].id,
        world.cases["cc_o1"],
        f"e2e-stream:{world.cases['cc_o1']}",
    )
    lines: list[str] = []
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        client.stream("GET", "/alerts/stream", headers={**headers, "Last-Event-ID": str(start)}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    assert "event: alert" in lines
    event = json.loads(lines[-1].removeprefix("data:").strip())
    assert (event["id"], event["kind"]) == (alert_id, "no_signal")
