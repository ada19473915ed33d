"""Every figure of the project in one run, beside the machine's limit and a peer design.

bench/run (the shell script beside this file) installs what the run needs, then runs this:
  1. the limits of this machine: an empty Litestar POST handler served like the tracking
     service (bench/empty_app.py), and Redis's own pipelined rate (redis-benchmark, -P 64);
  2. this project's ingest: single pings and batches (rate, request latency p50/p99),
     ping-to-alert p50/p99 and the persister's lag at half the single-ping rate, the
     persister's drain rate (bench/tracking_ingest.py);
  3. the peer, the design an integrator would build first: each ping inserted into
     PostgreSQL with PostGIS and the zones checked in SQL (bench/postgis_peer.py);
  4. scale: the ingest rates with 1,000, 100,000 and 1,000,000 monitored subjects (5 zones
     each, each fleet in a Redis of its own) in the same rounds, the ingest workers' resident
     memory, Redis bytes per subject;
  5. the officers' API under load: the demo city in a database of its own, both services and
     the tracking workers up, and locust (bench/locust/locustfile.py) driving its devices and
     --officers officers at once; p50/p99 of every officer operation.
It writes bench/results/<date>-<host>.json (everything) and .md (the table, with the ratios
project/limit and project/peer, and every target met or missed), and prints the table.

    bench/run                 # the whole run: about 20 minutes on 2 cores
    bench/run --quick         # 1,000 and 10,000 subjects, shorter phases: about 3 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import functools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import tracking_ingest
from harness import create_database, free_port, stop
from reporting import RESULTS

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CASEMGR = str(Path(sys.executable).with_name("casemgr"))
# The case-file work's target for the officers' reads (bench/case_files.py).
OFFICER_P99_TARGET_MS = 50
OFFICER_OPERATIONS = ["/cases", "/people?q=", "/cases/{id}", "/alerts", "/alerts/{id}/acknowledge"]


def machine() -> dict[str, object]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])  # type: ignore[index]
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip(),
    }


def redis_limit(redis_url: str, requests: int) -> dict[str, float]:
    """Redis's own rate on this machine, pipelined 64 deep: SET, and XADD to one stream."""
    parts = urlsplit(redis_url)
    base = ["redis-benchmark", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
    base += ["-P", "64", "-n", str(requests), "-q", "--csv"]
    figures: dict[str, float] = {}
    runs = {
        "set_per_s": ["-t", "set"],
        "xadd_per_s": ["xadd", "bench:limit:stream", "MAXLEN", "~", "100000", "*", "f", "v"],
    }
    for name, command in runs.items():
        output = subprocess.run([*base, *command], capture_output=True, text=True, check=True).stdout
        rows = [row for row in csv.reader(output.splitlines()) if row and row[0] != "test"]
        figures[name] = round(float(rows[-1][1]))
    subprocess.run([*base[:5], "DEL", "bench:limit:stream"], capture_output=True, check=False)
    return figures


def officers_under_load(seconds: float, officers: int, monitored: int, workers: int) -> dict[str, object]:
    """The demo city on both services, its devices and `officers` officers driven by locust."""
    dsn = asyncio.run(create_database("casemgr_bench_officers"))
    data_key = base64.b64encode(os.urandom(32)).decode()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "CASEMGR_ENV": "demo",
        "CASEMGR_MFA_REQUIRED": "false",
        "CASEMGR_LOG_LEVEL": "WARNING",
        # Every client of a benchmark is one address on loopback: the per-address limits are off.
        "CASEMGR_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0",
        "CASEMGR_RATE_LIMIT_LOGINS_PER_ADDRESS_PER_MINUTE": "0",
        "CASEMGR_DATA_KEYS": f"bench:{data_key}",
        "CASEMGR_TRACKING_NAMESPACE": f"benchofc{uuid.uuid4().hex[:6]}",
        # Logins are not what is measured: a cheap hash, as in bench/case_files.py.
        "CASEMGR_ARGON2_TIME_COST": "1",
        "CASEMGR_ARGON2_MEMORY_KIB": "1024",
    }
    work = Path(tempfile.mkdtemp(prefix="casemgr-bench-"))
    devices_file = work / "devices.json"
    subprocess.run([CASEMGR, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [CASEMGR, "seed-demo", "--devices-file", str(devices_file), "--monitored", str(monitored)],
        env=env,
        check=True,
        capture_output=True,
    )
    web_port, tracking_port = free_port(), free_port()
    processes = [
        subprocess.Popen([CASEMGR, "serve", "--port", str(web_port), "--workers", str(workers)], env=env),
        subprocess.Popen(
            [CASEMGR, "tracking", "serve", "--port", str(tracking_port), "--workers", str(workers)], env=env
        ),
        subprocess.Popen([CASEMGR, "tracking", "workers"], env=env),
    ]
    try:
        for port in (web_port, tracking_port):
            wait_ready(port)
        dirty_kb = write_back()
        locust_env = {
            **env,
            "CASEMGR_URL": f"http://127.0.0.1:{web_port}",
            "TRACKING_URL": f"http://127.0.0.1:{tracking_port}",
            "LOCUST_DEVICES_FILE": str(devices_file),
            "LOCUST_FIX_EVERY_S": "1",
            "LOCUST_BATCH_FIXES": "10",
            "LOCUST_OFFICER_USERS": str(officers),
            "LOCUST_THINK_S": "1",
        }
        prefix = work / "locust"
        subprocess.run(
            [
                str(Path(sys.executable).with_name("locust")),
                "-f",
                str(ROOT / "bench" / "locust" / "locustfile.py"),
                "--headless",
                "--users",
                str(monitored + officers),
                "--spawn-rate",
                "100",
                "--run-time",
                f"{seconds:.0f}s",
                "--csv",
                str(prefix),
                "--only-summary",
                "--reset-stats",  # from when every user has started (and logged in)
            ],
            env=locust_env,
            cwd=ROOT,
            check=False,  # locust exits 1 when a request failed: the failures are reported below
            capture_output=True,
        )
        with (work / "locust_stats.csv").open() as f:
            stats = {row["Name"]: row for row in csv.DictReader(f)}
    finally:
        for process in processes:
            stop(process)
        # The demo city's tracking keys would stay in the shared Redis (1,392 a run, seen).
        namespace = env["CASEMGR_TRACKING_NAMESPACE"]
        asyncio.run(tracking_ingest.with_redis(lambda r: tracking_ingest.drop_namespace(r, namespace)))
        shutil.rmtree(work, ignore_errors=True)
    operations: dict[str, dict[str, float]] = {}
    for name, row in stats.items():
        if name == "Aggregated":
            continue
        operations[name] = {
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "per_s": round(float(row["Requests/s"]), 1),
            "p50_ms": float(row["50%"]),
            "p99_ms": float(row["99%"]),
        }
    return {
        "seconds": seconds,
        "officers": officers,
        "devices": monitored,
        "device_fix_every_s": 1,
        "think_s": 1,
        "workers": workers,
        "dirty_kb_written_back_first": dirty_kb,
        "operations": operations,
    }


def write_back() -> int:
    """Have the kernel write every dirty page to disk now, and say how many kB there were.
    The phase before drains millions of pings into PostgreSQL, which the kernel writes to disk
    at its own pace, possibly into the officers' phase, where each read's audit row waits for
    its commit to reach the disk. A run of 2026-11-27 had the officers' p99 at 270-500 ms (25-44
    ms in the run before) with no PostgreSQL checkpoint in the phase; the kB are recorded, so
    that the next such run can tell."""
    meminfo = Path("/proc/meminfo")
    dirty = 0
    if meminfo.exists():
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines())
        dirty = int(fields["Dirty"].split()[0]) + int(fields["Writeback"].split()[0])
    os.sync()
    return dirty


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the service on port {port} did not become ready")


def summary_rows(result: dict[str, object]) -> list[tuple[str, str, str, str, str, str]]:
    """measure | this project | limit of the machine | peer | ratios | target"""
    ingest: dict[str, object] = result["ingest"]  # type: ignore[assignment]
    subjects = ingest["subjects"]
    fleet: dict[str, dict[str, float]] = ingest[f"fleet_{subjects}"]  # type: ignore[assignment]
    limit = ingest["limit_empty_litestar"]["single"]  # type: ignore[index]
    peer: dict[str, dict[str, float]] | None = ingest.get("peer_postgis")  # type: ignore[assignment]
    redis: dict[str, float] = result["redis_limit"]  # type: ignore[assignment]
    single, batched = fleet["single"], fleet["batched"]
    rows: list[tuple[str, str, str, str, str, str]] = []

    verdict = functools.partial(tracking_ingest.verdict, strong=True)
    judged = functools.partial(tracking_ingest.judged, strong=True)

    peer_single = f"{peer['single']['requests_per_s']:,} req/s" if peer else "not measured"
    peer_batched = f"{peer['batched']['pings_per_s']:,} pings/s" if peer else "not measured"
    # Judged round by round (tracking_ingest.paired): the median round's ratio.
    shares = tracking_ingest.paired(fleet, ingest["limit_empty_litestar"], "single")  # type: ignore[arg-type]
    rows.append(
        (
            f"single-ping ingest, {subjects:,} subjects",
            f"{single['requests_per_s']:,} req/s",
            f"{limit['requests_per_s']:,} req/s (empty Litestar POST)",
            peer_single,
            f"{tracking_ingest.describe_ratios(shares, '{:.1%}')} of limit"
            + (f"; {single['requests_per_s'] / peer['single']['requests_per_s']:.1f}x peer" if peer else ""),
            judged("≥ 60 % of limit", statistics.median(shares) >= 0.6, single),
        )
    )
    rows.append(
        (
            "single-ping request latency p50 / p99",
            f"{single['latency_p50_ms']} / {single['latency_p99_ms']} ms",
            f"{limit['latency_p50_ms']} / {limit['latency_p99_ms']} ms",
            f"{peer['single']['latency_p50_ms']} / {peer['single']['latency_p99_ms']} ms" if peer else "",
            f"at full load: {single['connections']} and {limit['connections']} connections, each's best",
            "",
        )
    )
    rows.append(
        (
            f"batched ingest, batches of {ingest['batch']}",
            f"{batched['pings_per_s']:,} pings/s",
            f"{redis['xadd_per_s']:,} XADD/s, {redis['set_per_s']:,} SET/s (Redis, pipelined)",
            peer_batched,
            f"{batched['pings_per_s'] / redis['xadd_per_s']:.0%} of Redis XADD"
            + (f"; {batched['pings_per_s'] / peer['batched']['pings_per_s']:.1f}x peer" if peer else ""),
            judged("≥ 100,000 pings/s", batched["pings_per_s"] >= 100_000, batched),
        )
    )
    rows.append(
        (
            "batched request latency p50 / p99",
            f"{batched['latency_p50_ms']} / {batched['latency_p99_ms']} ms",
            "",
            f"{peer['batched']['latency_p50_ms']} / {peer['batched']['latency_p99_ms']} ms" if peer else "",
            "8 connections",
            "",
        )
    )
    half: dict[str, float] = ingest["at_half_rate"]  # type: ignore[assignment]
    rows.append(
        (
            "ping-to-alert p50 / p99, at half rate",
            f"{half['ping_to_alert_p50_ms']} / {half['ping_to_alert_p99_ms']} ms",
            "",
            "",
            f"{half['alerts']} alerts at {half['achieved_rate']:,.0f} req/s",
            tracking_ingest.paced_judged("p99 ≤ 250 ms", half, strong=True),
        )
    )
    rows.append(
        (
            "persister lag p50 / p99, at half rate",
            f"{half['persister_lag_p50_ms']} / {half['persister_lag_p99_ms']} ms",
            "",
            "0 (the peer writes in the request)",
            "oldest queued ping not yet in PostgreSQL",
            "",
        )
    )
    if "persister" in ingest:
        persisted: dict[str, float] = ingest["persister"]  # type: ignore[assignment]
        rows.append(
            (
                "persister drain into PostgreSQL",
                f"{persisted['rows_per_s']:,} pings/s",
                "",
                "",
                f"{persisted['rows']:,} rows, one process",
                "",
            )
        )
    for scale in ingest["scales"]:  # type: ignore[attr-defined]
        other: dict[str, dict[str, float]] = ingest[f"fleet_{scale}"]  # type: ignore[assignment]
        for kind, figure, unit in (
            ("single", "requests_per_s", "req/s"),
            ("batched", "pings_per_s", "pings/s"),
        ):
            ratios = tracking_ingest.paired(other, fleet, kind)  # type: ignore[arg-type]
            rows.append(
                (
                    f"{'single-ping' if kind == 'single' else 'batched'} ingest, {scale:,} subjects",
                    f"{other[kind][figure]:,} {unit}",
                    "",
                    "",
                    f"{tracking_ingest.describe_ratios([r - 1 for r in ratios], '{:+.0%}')} vs "
                    f"{subjects:,} subjects",
                    judged("within 10 %", statistics.median(ratios) >= 0.9, other[kind], fleet[kind]),
                )
            )
    for size in [subjects, *ingest["scales"]]:  # type: ignore[misc]
        entry: dict[str, object] = ingest[f"fleet_{size}"]  # type: ignore[assignment]
        memory: dict[str, float] = entry["redis_bytes_per_subject"]  # type: ignore[assignment]
        rows.append(
            (
                f"{size:,} subjects: worker RSS; Redis per subject",
                f"{entry['worker_rss_mb']:,.0f} MB; {memory['config_bytes'] + memory['state_bytes']:,.0f} B",
                "",
                "",
                f"configurations loaded in {entry['ready_s']} s",
                "",
            )
        )
    officers: dict[str, object] | None = result.get("officers")  # type: ignore[assignment]
    if officers:
        ops: dict[str, dict[str, float]] = officers["operations"]  # type: ignore[assignment]
        for name in OFFICER_OPERATIONS:
            if name in ops:
                op = ops[name]
                rows.append(
                    (
                        f"officer API {name}, p50 / p99",
                        f"{op['p50_ms']:g} / {op['p99_ms']:g} ms",
                        "",
                        "",
                        f"{op['requests']:,} requests, {op['failures']} failed; {officers['officers']} officers "
                        f"and {officers['devices']} devices at once",
                        f"p99 ≤ {OFFICER_P99_TARGET_MS} ms: {verdict(op['p99_ms'] <= OFFICER_P99_TARGET_MS)}",
                    )
                )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10,000 subjects at most, shorter phases")
    parser.add_argument("--seconds", type=float, help="seconds per measured phase (default 6; quick 3)")
    parser.add_argument("--officers", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    seconds = args.seconds or (3 if args.quick else 6)
    started = time.monotonic()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    result: dict[str, object] = {
        "benchmark": "run",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join(["bench/run", *sys.argv[1:]]),
    }
    print("limits: Redis pipelined", flush=True)
    result["redis_limit"] = redis_limit(redis_url, 500_000 if args.quick else 2_000_000)
    print(result["redis_limit"], flush=True)
    print("ingest, limit, peer and scale", flush=True)
    options = tracking_ingest.Options(
        subjects=1000,
        scales=[10_000] if args.quick else [100_000, 1_000_000],
        seconds=seconds,
        rounds=1 if args.quick else 5,
        workers=args.workers,
        peer=True,
    )
    result["ingest"] = tracking_ingest.measure(options)
    print("officers under load", flush=True)
    result["officers"] = officers_under_load(
        seconds=15 if args.quick else 40, officers=args.officers, monitored=300, workers=args.workers
    )
    result["seconds_in_all"] = round(time.monotonic() - started)
    rows = summary_rows(result)
    table = "\n".join(
        [
            "| measure | this project | limit of the machine | peer (PostGIS) | ratios | target |",
            "|---|---|---|---|---|---|",
            *(f"| {' | '.join(row)} |" for row in rows),
        ]
    )
    m: dict[str, object] = result["machine"]  # type: ignore[assignment]
    heading = (
        f"`{result['command']}` on {m['host']}: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}; load generators on the same cores; {result['seconds_in_all']} s in all"
    )
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{platform.node()}{'-quick' if args.quick else ''}"
    out.with_name(out.name + ".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_name(out.name + ".md").write_text(f"{heading}\n\n{table}\n")
    print(f"\n{heading}\n\n{table}\n\nwritten: {out}.json, {out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
