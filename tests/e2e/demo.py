"""The demo city as the end-to-end tests run it: seeded into a database of the test's own
(`casemgr seed-demo`) and served by real processes, as `scripts/up` serves it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec

from casemgr.monitoring.demo import DemoDevice
from tests.e2e.test_process import casemgr, env_for
from tests.servers import free_port, wait_ready


def demo_env(database_url: str, namespace: str, **extra: str) -> dict[str, str]:
    """The demo's settings (password login, its logins) on a database and a tracking namespace."""
    return env_for(
        database_url,
        CASEMGR_ENV="demo",
        CASEMGR_MFA_REQUIRED="false",
        CASEMGR_LOG_LEVEL="WARNING",
        CASEMGR_TRACKING_NAMESPACE=namespace,
        CASEMGR_TRACKING_SHARDS="4",
        **extra,
    )


def seed_demo(
    env: dict[str, str], folder: Path, *, people: int, monitored: int
) -> tuple[Path, list[DemoDevice]]:
    """Migrates and seeds; returns the devices file and its devices (with their secrets)."""
    devices_file = folder / "devices.json"
    assert casemgr(env, "migrate").returncode == 0
    seeded = casemgr(
        env,
        "seed-demo",
        "--people",
        str(people),
        "--monitored",
        str(monitored),
        "--devices-file",
        str(devices_file),
    )
    assert seeded.returncode == 0, seeded.stderr
    return devices_file, msgspec.json.decode(devices_file.read_bytes(), type=list[DemoDevice])


@contextmanager
def serve_demo(env: dict[str, str], *, tracking_workers: bool = True) -> Iterator[tuple[str, str]]:
    """Both services (one worker each) and, unless told not to, the tracking workers; yields the
    two base URLs once both report ready, and stops every process afterwards."""
    web, tracking = free_port(), free_port()
    command = [sys.executable, "-m", "casemgr"]
    commands = [
        ["serve", "--port", str(web), "--workers", "1"],
        ["tracking", "serve", "--port", str(tracking), "--workers", "1"],
    ]
    if tracking_workers:
        commands.append(["tracking", "workers"])
    processes = [subprocess.Popen([*command, *args], env=env) for args in commands]
    try:
        wait_ready(web)
        wait_ready(tracking)
        yield f"http://127.0.0.1:{web}", f"http://127.0.0.1:{tracking}"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@dataclass(frozen=True)
class DemoCity:
    env: dict[str, str]
    devices_file: Path
    devices: list[DemoDevice]
    web: str
    tracking: str


@contextmanager
def demo_city(
    database_url: str, folder: Path, namespace: str, *, people: int = 400, monitored: int = 12, **extra: str
) -> Iterator[DemoCity]:
    env = demo_env(database_url, namespace, **extra)
    devices_file, devices = seed_demo(env, folder, people=people, monitored=monitored)
    with serve_demo(env) as (web, tracking):
        yield DemoCity(env, devices_file, devices, web, tracking)
