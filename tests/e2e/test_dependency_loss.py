"""Losing Redis or PostgreSQL: both services answer 503 with Retry-After (never a 500, never a
hang), report not ready, and serve again within 5 seconds of the dependency's return, without
a restart. The ingest needs no PostgreSQL: it keeps accepting pings while the database is away.

Both services run as processes against a Redis (with AOF) and a PostgreSQL of the test's own,
which the test kills and starts again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import msgspec
import pytest

from casemgr.monitoring.demo import DemoDevice
from tests.e2e.demo import demo_env, seed_demo, serve_demo
from tests.servers import (
    PrivatePostgres,
    PrivateRedis,
    private_postgres,
    private_redis,
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
        env = demo_env(postgres.url, "trk", REDIS_URL=redis.url)
        device = seed_demo(env, workdir, people=200, monitored=2)[1][0]
        with (
            serve_demo(env, tracking_workers=False) as (web_url, tracking_url),
            httpx.Client(base_url=web_url, timeout=TIMEOUT_S) as web,
            httpx.Client(base_url=tracking_url, timeout=TIMEOUT_S) as tracking,
        ):
            yield System(redis, postgres, web, tracking, device)


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
