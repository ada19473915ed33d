"""Locust scenarios: a fleet of monitoring devices and the officers who act on their alerts.

DeviceFleet: each virtual device is one of the devices file (the demo's, or a deployment's
export), walks the device simulator's routes (tracking/simulator.py: home, errands, curfew)
with GPS noise, takes a fix every LOCUST_FIX_EVERY_S seconds, keeps its own sequence numbers
(starting from the clock, so a second run never repeats the first's) and uploads as devices
do: most buffer their fixes and send them as one batch, LOCUST_SINGLE_SHARE of them send every
fix on its own. A refused upload (not 202) is a failure.

Officer: logs in (with a TOTP code when the deployment asks for one and LOCUST_TOTP_SECRETS
holds the account's secret), then, with a think time between clicks: the caseload, a search
by name or pinyin initials, a case file, the alert inbox, and acknowledging a new alert.

Every setting comes from the environment, so the same file drives a remote deployment:

    CASEMGR_URL             the officers' service        (default http://127.0.0.1:8000)
    TRACKING_URL            the devices' ingest service  (default http://127.0.0.1:8100)
    LOCUST_DEVICES_FILE     JSON list of devices as `casemgr seed-demo` writes it
                            (default .data/demo-devices.json)
    LOCUST_DEVICE_USERS     how many devices (default: every device of the file)
    LOCUST_FIX_EVERY_S      seconds between two fixes of a device (default 5)
    LOCUST_BATCH_FIXES      fixes per batched upload (default: the device's reporting interval's worth)
    LOCUST_SINGLE_SHARE     share of devices that upload each fix alone (default 0.2)
    LOCUST_OFFICER_USERS    how many officers (default 10)
    LOCUST_OFFICERS         comma-separated usernames (default: the demo's officers and supervisors)
    LOCUST_PASSWORD         their password (default: the demo's)
    LOCUST_TOTP_SECRETS     comma-separated username=base32secret, for a deployment that asks for TOTP
    LOCUST_THINK_S          an officer's mean think time between clicks, seconds (default 2)

Headless, from one command (scripts/locust starts nothing; point it at a running system):

    scripts/locust -t 60s                      # against `scripts/up` on this machine
    CASEMGR_URL=https://cm.example TRACKING_URL=https://em.example scripts/locust -t 5m
"""

from __future__ import annotations

import itertools
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pyotp
from locust import FastHttpUser, task
from locust.exception import StopUser
from tracking.simulator import VirtualDevice

from casemgr.monitoring.demo import DemoDevice
from casemgr.seed import DEMO_PASSWORD, GIVEN, SURNAMES


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


CASEMGR_URL = os.environ.get("CASEMGR_URL", "http://127.0.0.1:8000")
TRACKING_URL = os.environ.get("TRACKING_URL", "http://127.0.0.1:8100")
DEVICES_FILE = Path(os.environ.get("LOCUST_DEVICES_FILE", ".data/demo-devices.json"))
FIX_EVERY_S = _env_float("LOCUST_FIX_EVERY_S", 5)
SINGLE_SHARE = _env_float("LOCUST_SINGLE_SHARE", 0.2)
THINK_S = _env_float("LOCUST_THINK_S", 2)
OFFICERS = [
    u.strip()
    for u in os.environ.get(
        "LOCUST_OFFICERS",
        "officer.riverside,officer.riverside2,officer.harbour,officer.hillside,officer.market,"
        "supervisor.east,supervisor.west,supervisor.city",
    ).split(",")
    if u.strip()
]
PASSWORD = os.environ.get("LOCUST_PASSWORD", DEMO_PASSWORD)
TOTP_SECRETS = dict(
    pair.split("=", 1) for pair in os.environ.get("LOCUST_TOTP_SECRETS", "").split(",") if "=" in pair
)
PURPOSE = {"X-Purpose": "load test"}


def _load_devices() -> list[DemoDevice]:
    if not DEVICES_FILE.exists():
        return []
    return msgspec.json.decode(DEVICES_FILE.read_bytes(), type=list[DemoDevice])


DEVICES = _load_devices()
_next_device = itertools.cycle(DEVICES) if DEVICES else None
_next_officer = itertools.cycle(OFFICERS)


class DeviceFleet(FastHttpUser):
    """One ankle monitor: a fix every FIX_EVERY_S seconds, uploaded alone or in batches."""

    host = TRACKING_URL
    fixed_count = int(os.environ.get("LOCUST_DEVICE_USERS", len(DEVICES)))

    def on_start(self) -> None:
        if _next_device is None:
            raise StopUser(f"no devices: {DEVICES_FILE} is missing (LOCUST_DEVICES_FILE)")
        spec = next(_next_device)
        self.device = VirtualDevice(spec=spec, rng=random.Random())
        self.device.seq = int(time.time() * 10)  # above every earlier run's numbers
        self.single = self.device.rng.random() < SINGLE_SHARE
        default_batch = max(1, round(spec.interval_s / FIX_EVERY_S))
        self.batch_fixes = int(os.environ.get("LOCUST_BATCH_FIXES", default_batch))
        self.buffer: list[dict[str, Any]] = []
        self.headers = {
            "Content-Type": "application/json",
            "X-Device-Id": spec.device_id,
            "Authorization": f"Bearer {spec.secret}",
        }

    def wait_time(self) -> float:
        return FIX_EVERY_S

    @task
    def take_a_fix(self) -> None:
        now = datetime.now(UTC)
        self.device.step(FIX_EVERY_S, now)
        fix = self.device.fix(now)
        if self.single:
            self._upload(fix, "/v1/pings (single)")
            return
        self.buffer.append(fix)
        if len(self.buffer) >= self.batch_fixes:
            batch, self.buffer = self.buffer, []
            self._upload(batch, "/v1/pings (batch)")

    def _upload(self, body: object, name: str) -> None:
        with self.client.post(
            "/v1/pings", data=msgspec.json.encode(body), headers=self.headers, name=name, catch_response=True
        ) as response:
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:200] if response.text else ''}")


class Officer(FastHttpUser):
    """An officer at work: caseload, search, a case file, the alert inbox, acknowledgements."""

    host = CASEMGR_URL
    fixed_count = int(os.environ.get("LOCUST_OFFICER_USERS", 10))

    def wait_time(self) -> float:
        return random.expovariate(1 / THINK_S) if THINK_S > 0 else 0.0

    def on_start(self) -> None:
        username = next(_next_officer)
        self.headers: dict[str, str] = {}
        self.case_ids: list[int] = []
        self.new_alerts: list[int] = []
        with self.client.post(
            "/auth/login", json={"username": username, "password": PASSWORD}, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"login of {username}: {response.status_code}")
                raise StopUser
            session = response.json()
        self.headers = {"Authorization": f"Bearer {session['token']}"}
        if session["mfa"] in ("pending", "enrol"):
            secret = TOTP_SECRETS.get(username)
            if secret is None or session["mfa"] == "enrol":
                raise StopUser(f"{username} needs a TOTP code: put its secret in LOCUST_TOTP_SECRETS")
            with self.client.post(
                "/auth/totp/verify",
                json={"code": pyotp.TOTP(secret).now()},
                headers=self.headers,
                catch_response=True,
            ) as response:
                if response.status_code != 200:
                    response.failure(f"TOTP of {username}: {response.status_code}")
                    raise StopUser
                self.headers = {"Authorization": f"Bearer {response.json()['token']}"}

    @task(3)
    def caseload(self) -> None:
        response = self.client.get("/cases?limit=50&status=active", headers=self.headers, name="/cases")
        if response.status_code == 200:
            self.case_ids = [c["id"] for c in response.json()["items"]] or self.case_ids

    @task(3)
    def search(self) -> None:
        name = random.choice(SURNAMES) + random.choice(GIVEN)
        self.client.get("/people", params={"q": name, "limit": 20}, headers=self.headers, name="/people?q=")

    @task(3)
    def open_case(self) -> None:
        if self.case_ids:
            case_id = random.choice(self.case_ids)
            self.client.get(f"/cases/{case_id}", headers={**self.headers, **PURPOSE}, name="/cases/{id}")

    @task(2)
    def inbox(self) -> None:
        response = self.client.get("/alerts?status=new&limit=20", headers=self.headers, name="/alerts")
        if response.status_code == 200:
            self.new_alerts = [a["id"] for a in response.json()["items"]]

    @task(1)
    def acknowledge(self) -> None:
        if not self.new_alerts:
            return
        alert_id = self.new_alerts.pop()
        with self.client.post(
            f"/alerts/{alert_id}/acknowledge",
            headers=self.headers,
            name="/alerts/{id}/acknowledge",
            catch_response=True,
        ) as response:
            # Another officer of the same unit may have taken it first: that is work, not a fault.
            if response.status_code == 409:
                response.success()
