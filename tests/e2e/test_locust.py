"""The locust scenarios (bench/locust/locustfile.py) drive the real system without a failure:
devices upload single pings and batches that reach PostgreSQL, officers go through their day."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.demo import demo_city
from tests.e2e.test_process import fresh_database as fresh_database  # a fixture, used by name

ROOT = Path(__file__).resolve().parents[2]
OFFICER_OPERATIONS = {"/cases", "/people?q=", "/cases/{id}", "/alerts", "/alerts/{id}/acknowledge"}


@pytest.fixture
def demo_system(fresh_database: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """The demo city on both services and the tracking workers, one process each."""
    with demo_city(fresh_database, tmp_path, f"locust{os.getpid()}") as city:
        yield (
            {
                **city.env,
                "CASEMGR_URL": city.web,
                "TRACKING_URL": city.tracking,
                "LOCUST_DEVICES_FILE": str(city.devices_file),
            },
            tmp_path,
        )


def run_locust(env: dict[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("locust")),
            "-f",
            str(ROOT / "bench" / "locust" / "locustfile.py"),
            "--headless",
            "--users",
            "100",
            "--spawn-rate",
            "100",
            "--run-time",
            "8s",
            "--csv",
            str(workdir / "run"),
            "--only-summary",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_device_fleet_and_the_officers_run_without_a_failure(
    demo_system: tuple[dict[str, str], Path], fresh_database: str
) -> None:
    env, workdir = demo_system
    env = {
        **env,
        "LOCUST_FIX_EVERY_S": "0.5",
        "LOCUST_BATCH_FIXES": "4",
        "LOCUST_SINGLE_SHARE": "0.5",
        "LOCUST_OFFICER_USERS": "4",
        "LOCUST_THINK_S": "0.2",
    }
    run = await asyncio.to_thread(run_locust, env, workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    with (workdir / "run_stats.csv").open() as f:
        stats = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(stats["Aggregated"]["Failure Count"]) == 0
    for name in ["/v1/pings (single)", "/v1/pings (batch)", "/auth/login", *OFFICER_OPERATIONS]:
        assert int(stats[name]["Request Count"]) > 0, name
    # What the devices sent is in PostgreSQL (the workers persisted it), each ping once.
    conn = await asyncpg.connect(fresh_database)
    try:
        for _ in range(50):
            stored = await conn.fetchval("SELECT count(*) FROM pings")
            if stored:
                break
            await asyncio.sleep(0.2)
        assert stored > 0
        repeated = await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM pings GROUP BY device_id, seq HAVING count(*) > 1) AS r"
        )
        assert repeated == 0
        assert await conn.fetchval("SELECT count(*) FROM alerts WHERE status = 'acknowledged'") > 0
    finally:
        await conn.close()
