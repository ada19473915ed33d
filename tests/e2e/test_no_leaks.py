"""No leaks: sentinel values planted in health and drug fields, in notes and in secrets (a
password, a device's secret, session tokens, the data key) go through the main flows of both
services, good requests and bad, and none of them turns up in any log line of any process or
in any error body."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from casemgr.monitoring.demo import DemoDevice
from tests.conftest import DATA_KEY
from tests.e2e.demo import seed_demo
from tests.e2e.test_process import env_for
from tests.e2e.test_process import fresh_database as fresh_database  # a fixture, used by name
from tests.servers import free_port, wait_ready

MARK = secrets.token_hex(4).upper()
HOSPITAL = f"SENTINEL-HOSPITAL-{MARK}"
SUBSTANCE = f"SENTINEL-SUBSTANCE-{MARK}"
RELAPSE_NOTE = f"SENTINEL-RELAPSE-{MARK}"
CASE_NOTE = f"SENTINEL-NOTE-{MARK}"
PASSWORD_GUESS = f"SENTINEL-PASSWORD-{MARK}"
SECRET_GUESS = f"SENTINEL-SECRET-{MARK}"
PASSWORD = "demo-password-2026"


class System:
    def __init__(
        self, web: httpx.Client, tracking: httpx.Client, device: DemoDevice, logs: list[Path]
    ) -> None:
        self.web, self.tracking, self.device, self.logs = web, tracking, device, logs
        self.error_bodies: list[str] = []
        self.tokens: list[str] = []

    def login(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        response = self.web.post("/auth/login", json={"username": username, "password": password})
        if response.status_code != 200:
            self.error_bodies.append(response.text)
            return {}
        self.tokens.append(response.json()["token"])
        return {"Authorization": f"Bearer {self.tokens[-1]}", "X-Purpose": "leak test"}

    def call(
        self, client: httpx.Client, method: str, path: str, expect: int, **kwargs: Any
    ) -> httpx.Response:
        response = client.request(method, path, **kwargs)
        assert response.status_code == expect, (method, path, response.text)
        if response.status_code >= 400:
            self.error_bodies.append(response.text)
        return response


@pytest.fixture
def system(fresh_database: str, tmp_path: Path) -> Iterator[System]:
    env = env_for(
        fresh_database,
        CASEMGR_ENV="demo",
        CASEMGR_MFA_REQUIRED="false",
        CASEMGR_LOG_LEVEL="DEBUG",  # the most a deployment could log
        CASEMGR_TRACKING_NAMESPACE=f"leak{MARK.lower()}",
        CASEMGR_TRACKING_SHARDS="4",
    )
    device = seed_demo(env, tmp_path, people=300, monitored=2)[1][0]
    web_port, tracking_port = free_port(), free_port()
    logs = [tmp_path / f"{name}.log" for name in ("web", "tracking", "workers")]
    commands = [
        ["serve", "--port", str(web_port), "--workers", "1"],
        ["tracking", "serve", "--port", str(tracking_port), "--workers", "1"],
        ["tracking", "workers"],
    ]
    processes = []
    for command, log in zip(commands, logs, strict=True):
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen([sys.executable, "-m", "casemgr", *command], env=env, stdout=out, stderr=out)
            )
    try:
        wait_ready(web_port)
        wait_ready(tracking_port)
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=10) as web,
            httpx.Client(base_url=f"http://127.0.0.1:{tracking_port}", timeout=10) as tracking,
        ):
            yield System(web, tracking, device, logs)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


def first_case(system: System, headers: dict[str, str], program: str) -> int:
    response = system.call(
        system.web, "GET", "/cases", 200, params={"program": program, "limit": 1}, headers=headers
    )
    return int(response.json()["items"][0]["id"])


def test_no_planted_value_reaches_a_log_line_or_an_error_body(system: System) -> None:
    web, tracking = system.web, system.tracking
    # Passwords: a wrong guess, then the right one.
    assert system.login("health.east", PASSWORD_GUESS) == {}
    health = system.login("health.east")
    officer = system.login("officer.riverside")

    # Clinical fields of a mental-illness case, by the health worker, then badly.
    smi = first_case(system, health, "severe_mental_illness")
    clinical = {
        "program": "severe_mental_illness",
        "risk_grade": 2,
        "hospital": HOSPITAL,
        "diagnosis_icd10": "F20.0",
    }
    system.call(web, "PUT", f"/cases/{smi}/detail", 200, json=clinical, headers=health)
    assert HOSPITAL in system.call(web, "GET", f"/cases/{smi}", 200, headers=health).text  # the control
    system.call(
        web, "PUT", f"/cases/{smi}/detail", 422, json={**clinical, "risk_grade": "high"}, headers=health
    )
    system.call(
        web,
        "PUT",
        f"/cases/{smi}/detail",
        422,
        json={**clinical, "diagnosis_icd10": HOSPITAL},
        headers=health,
    )
    system.call(
        web, "PUT", f"/cases/{smi}/detail", 422, json={**clinical, "remarks": HOSPITAL}, headers=health
    )
    # The officer may not see them: the read is refused or the fields are left out.
    assert HOSPITAL not in web.get(f"/cases/{smi}", headers=officer).text

    # Drug fields of a rehabilitation case, by its officer, then badly.
    drug = first_case(system, officer, "drug_rehab")
    relapse = {"date": "2026-02-01", "substance": SUBSTANCE, "note": RELAPSE_NOTE}
    rehab = {
        "program": "drug_rehab",
        "kind": "community_rehabilitation",
        "agreement_start": "2026-01-01",
        "relapses": [relapse],
    }
    system.call(web, "PUT", f"/cases/{drug}/detail", 200, json=rehab, headers=officer)
    broken = {**rehab, "relapses": [{**relapse, "date": SUBSTANCE}]}
    system.call(web, "PUT", f"/cases/{drug}/detail", 422, json=broken, headers=officer)
    system.call(web, "POST", f"/cases/{drug}/notes", 201, json={"body": CASE_NOTE}, headers=officer)
    system.call(web, "POST", f"/cases/{drug}/notes", 422, json={"body": CASE_NOTE, "x": 1}, headers=officer)
    system.call(web, "POST", "/cases/999999999/notes", 404, json={"body": CASE_NOTE}, headers=officer)

    # The device: its secret, a guess, and a body that is not JSON at all.
    device = system.device
    ping = {
        "device_id": device.device_id,
        "seq": 1,
        "fix_time": datetime.now(UTC).isoformat(),
        "latitude": 31.2,
        "longitude": 121.4,
        "accuracy_m": 8.0,
    }
    good = {
        "X-Device-Id": device.device_id,
        "Authorization": f"Bearer {device.secret}",
        "Content-Type": "application/json",
    }
    system.call(tracking, "POST", "/v1/pings", 202, content=msgspec.json.encode(ping), headers=good)
    guess = {**good, "Authorization": f"Bearer {SECRET_GUESS}"}
    system.call(tracking, "POST", "/v1/pings", 401, content=msgspec.json.encode(ping), headers=guess)
    truncated = f'{{"device_id": "{SECRET_GUESS}'.encode()
    system.call(tracking, "POST", "/v1/pings", 400, content=truncated, headers=good)
    system.call(
        tracking,
        "POST",
        "/v1/pings",
        422,
        content=msgspec.json.encode({**ping, "device_id": SECRET_GUESS}),
        headers=good,
    )

    time.sleep(1.5)  # the workers persist the ping and log what they log
    planted = {
        "hospital": HOSPITAL,
        "substance": SUBSTANCE,
        "relapse note": RELAPSE_NOTE,
        "case note": CASE_NOTE,
        "password guess": PASSWORD_GUESS,
        "password": PASSWORD,
        "device secret guess": SECRET_GUESS,
        "device secret": device.secret,
        "data key": DATA_KEY.split(":", 1)[1],
        **{f"session token {i}": token for i, token in enumerate(system.tokens)},
    }
    logged = "\n".join(log.read_text(errors="replace") for log in system.logs)
    assert logged.count("\n") > 5, "the services logged nothing: the test proves nothing"
    found_in_logs = sorted(name for name, value in planted.items() if value in logged)
    found_in_errors = sorted(
        name for name, value in planted.items() if any(value in body for body in system.error_bodies)
    )
    assert len(system.error_bodies) >= 8
    assert (found_in_logs, found_in_errors) == ([], [])
