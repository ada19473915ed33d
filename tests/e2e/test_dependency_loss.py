"""Losing Redis or PostgreSQL: both services answer 503 with Retry-After (never a 500, never a
hang), report not ready, and serve again within 5 seconds of the dependency's return, without
a restart. The ingest needs no PostgreSQL: it keeps accepting pings while the database is away.

Both services run as processes against a Redis (with AOF) and a PostgreSQL of the test's own,
which the test kills and starts again."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import msgspec
import pytest

from casemgr.monitoring.demo import DemoDevice
from tests.e2e.test_process import casemgr, env_for
from tests.servers import (
    PrivatePostgres,
    PrivateRedis,
    free_port,
    private_postgres,
    private_redis,
    wait_ready,
)

# Every request of this test gives up after this long: a hang is a failure, not a wait.
TIMEOUT_S = 5.0
RESUME_WITHIN_S = 5.0


@dataclass
class System:
    redis: PrivateRedis
    postgres: PrivatePostgres
    web: httpx.Client
    tracking: httpx.Client
    device: DemoDevice
    seq: int = 0

    def login(self) -> dict[str, str]:
        response = self.web.post(
            "/auth/login", json={"username": "officer.riverside", "password": "demo-password-2026"}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def upload(self) -> httpx.Response:
        self.seq += 1
        ping = {
            "device_id": self.device.device_id,
            "seq": self.seq,
            "fix_time": datetime.now(UTC).isoformat(),
            "longitude": self.device.home[0],
            "latitude": self.device.home[1],
            "accuracy_m": 8.0,
        }
        return self.tracking.post(
            "/v1/pings",
            content=msgspec.json.encode(ping),
            headers={
                "X-Device-Id": self.device.device_id,
                "Authorization": f"Bearer {self.device.secret}",
                "Content-Type": "application/json",
            },
        )


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    workdir = tmp_path_factory.mktemp("dependency-loss")
    with private_postgres() as postgres, private_redis(workdir) as redis:
        env = env_for(
            postgres.url,
            REDIS_URL=redis.url,
            CASEMGR_ENV="demo",
            CASEMGR_MFA_REQUIRED="false",
            CASEMGR_LOG_LEVEL="WARNING",
            CASEMGR_TRACKING_SHARDS="4",
        )
        assert casemgr(env, "migrate").returncode == 0
        devices_file = workdir / "devices.json"
        seeded = casemgr(
            env, "seed-demo", "--people", "200", "--monitored", "2", "--devices-file", str(devices_file)
        )
        assert seeded.returncode == 0, seeded.stderr
        device = msgspec.json.decode(devices_file.read_bytes(), type=list[DemoDevice])[0]
        web_port, tracking_port = free_port(), free_port()
        command = [sys.executable, "-m", "casemgr"]
        processes = [
            subprocess.Popen([*command, "serve", "--port", str(web_port), "--workers", "1"], env=env),
            subprocess.Popen(
                [*command, "tracking", "serve", "--port", str(tracking_port), "--workers", "1"], env=env
            ),
        ]
        try:
            wait_ready(web_port)
            wait_ready(tracking_port)
            with (
                httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=TIMEOUT_S) as web,
                httpx.Client(base_url=f"http://127.0.0.1:{tracking_port}", timeout=TIMEOUT_S) as tracking,
            ):
                yield System(redis, postgres, web, tracking, device)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["content-type"].startswith("application/problem+json")


def cases_served(system: System, headers: dict[str, str]) -> bool:
    return system.web.get("/cases", headers=headers).status_code == 200


def seconds_until(ok: Callable[[], bool], within: float) -> float:
    """Polls until ok() holds; returns how long it took (fails past `within`)."""
    started = time.monotonic()
    while True:
        try:
            if ok():
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        if time.monotonic() - started > within:
            raise AssertionError(f"not back within {within} s")
        time.sleep(0.1)


def test_without_redis_both_services_answer_503_and_resume_within_5_s_of_its_return(system: System) -> None:
    headers = system.login()
    assert system.web.get("/cases", headers=headers).status_code == 200
    assert system.upload().status_code == 202

    system.redis.kill()
    try:
        assert_unavailable(system.web.get("/cases", headers=headers))
        assert_unavailable(system.web.get("/health/ready"))
        assert system.web.get("/health/live").status_code == 200  # the process itself is fine
        assert_unavailable(system.upload())
        assert_unavailable(system.tracking.get("/health/ready"))
    finally:
        system.redis.start()
    # The session survived (AOF), and neither service was restarted.
    took = seconds_until(lambda: cases_served(system, headers), RESUME_WITHIN_S)
    took_ingest = seconds_until(lambda: system.upload().status_code == 202, RESUME_WITHIN_S)
    print(f"\nRedis back: casemgr served again in {took:.2f} s, the ingest {took_ingest:.2f} s later")
    assert system.web.get("/health/ready").status_code == 200
    assert system.tracking.get("/health/ready").status_code == 200


def test_without_postgresql_casemgr_answers_503_while_ingest_goes_on_and_both_resume(system: System) -> None:
    headers = system.login()
    system.postgres.stop("immediate")
    try:
        assert_unavailable(system.web.get("/cases", headers=headers))
        assert_unavailable(system.web.get("/health/ready"))
        # The ingest queues pings in Redis; the persister writes them once the database is back.
        assert system.upload().status_code == 202
    finally:
        system.postgres.start()
    took = seconds_until(lambda: cases_served(system, headers), RESUME_WITHIN_S)
    print(f"\nPostgreSQL back: casemgr served again in {took:.2f} s")
    assert system.web.get("/health/ready").status_code == 200
