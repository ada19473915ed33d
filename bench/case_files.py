"""Benchmark: the case files under load, at the scale of a large city.

Loads a private database with --people people (default 1,000,000), one case each, and
--contacts contacts (default 10,000,000), spread over 100 offices; starts the real service
(`casemgr serve`, --workers processes); logs --concurrency officers in (default 50) and has
each of them, for --seconds, list their caseload, search for a person and open a case file,
one after another. Prints p50/p95/p99 per operation and writes them to bench/results/.

    .venv/bin/python bench/case_files.py                       # the full run (~10 minutes to load)
    .venv/bin/python bench/case_files.py --people 20000 --contacts 200000 --seconds 10   # a quick look

Needs the PostgreSQL and Redis of scripts/lib.sh (DATABASE_URL / REDIS_URL or the local ones).
Traffic stays on 127.0.0.1; every loop ends after --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from reporting import facts, machine, percentile, write_results

from casemgr.auth.passwords import Passwords
from casemgr.migrate import apply_migrations
from casemgr.people.names import romanise
from casemgr.seed import GIVEN, SURNAMES

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password-2026"
DISTRICTS, OFFICES_PER_DISTRICT, COMMUNITIES_PER_OFFICE, OFFICERS_PER_OFFICE = 10, 10, 5, 5
PURPOSE = {"X-Purpose": "benchmark"}
WARM_UP_SECONDS = 5


def admin_url() -> str:
    return os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def create_database(name: str) -> str:
    conn = await asyncpg.connect(admin_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url(), name)


# A GB 11643 check character, computed where the rows are made.
_CHECK_FN = """
CREATE OR REPLACE FUNCTION pg_temp.gb_check(first17 text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT substr('10X98765432', ((
        SELECT sum(substr(first17, i::int, 1)::int * w)
          FROM unnest(ARRAY[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]) WITH ORDINALITY AS t(w, i)) % 11 + 1)::int, 1)
$$
"""


async def load(dsn: str, people: int, contacts: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off")
        started = time.perf_counter()
        # The org tree: a city, districts, offices, communities.
        await conn.execute(
            "INSERT INTO org_units (id, parent_id, kind, name, code, path) "
            "VALUES (1, NULL, 'city', 'Bench City', 'B', 'n1')"
        )
        unit_id = 1
        offices: list[int] = []
        communities: dict[int, list[int]] = {}
        insert_unit = (
            "INSERT INTO org_units (id, parent_id, kind, name, code, path) "
            "VALUES ($1, $2, $3::org_unit_kind, $4, $4, $5::ltree)"
        )
        for d in range(DISTRICTS):
            unit_id += 1
            district, district_path = unit_id, f"n1.n{unit_id}"
            await conn.execute(insert_unit, district, 1, "district", f"B-D{d}", district_path)
            for o in range(OFFICES_PER_DISTRICT):
                unit_id += 1
                office, office_path = unit_id, f"{district_path}.n{unit_id}"
                offices.append(office)
                await conn.execute(insert_unit, office, district, "office", f"B-D{d}-O{o}", office_path)
                communities[office] = []
                for c in range(COMMUNITIES_PER_OFFICE):
                    unit_id += 1
                    communities[office].append(unit_id)
                    await conn.execute(
                        insert_unit,
                        unit_id,
                        office,
                        "community",
                        f"B-D{d}-O{o}-C{c}",
                        f"{office_path}.n{unit_id}",
                    )
        await conn.execute("SELECT setval(pg_get_serial_sequence('org_units', 'id'), $1)", unit_id)
        password_hash = await Passwords(time_cost=1, memory_kib=1024, parallelism=1).hash(PASSWORD)
        await conn.execute(
            """
            INSERT INTO accounts (username, display_name, role, org_unit_id, password_hash)
            SELECT 'officer.' || o || '.' || k, 'Officer ' || o || '.' || k, 'officer', o, $2
              FROM unnest($1::bigint[]) AS o, generate_series(1, $3) AS k""",
            offices,
            password_hash,
            OFFICERS_PER_OFFICE,
        )
        # Names: a surname and one or two given characters, with their pinyin.
        givens = [g for g in GIVEN] + [a + b for a in GIVEN for b in GIVEN]
        sur_py = [romanise(s) for s in SURNAMES]
        giv_py = [romanise(g) for g in givens]
        await conn.execute(_CHECK_FN)
        await conn.execute(
            """
            WITH g AS (
                SELECT n, (n * 7919) % cardinality($1::text[]) + 1 AS s, (n * 104729) % cardinality($4::text[]) + 1 AS v,
                       date '1955-01-01' + (n % 17500)::int AS birth, (n / 17500) % 500 AS serial
                  FROM generate_series(1::bigint, $7::bigint) AS n)
            INSERT INTO persons (full_name, name_pinyin, name_initials, sex, birth_date, id_number, org_unit_id)
            SELECT ($1::text[])[s] || ($4::text[])[v], ($2::text[])[s] || ($5::text[])[v],
                   ($3::text[])[s] || ($6::text[])[v],
                   CASE WHEN n % 4 = 0 THEN 'female' ELSE 'male' END, birth,
                   first17 || pg_temp.gb_check(first17),
                   ($8::bigint[])[(n % cardinality($8::bigint[])) + 1]
              FROM g, LATERAL (SELECT '110105' || to_char(birth, 'YYYYMMDD') || lpad(serial::text, 2, '0')
                                      || CASE WHEN n % 4 = 0 THEN (2 * (n % 5))::text
                                              ELSE (2 * (n % 5) + 1)::text END AS first17) f
            """,
            SURNAMES,
            [p for p, _ in sur_py],
            [i for _, i in sur_py],
            givens,
            [p for p, _ in giv_py],
            [i for _, i in giv_py],
            people,
            [c for cs in communities.values() for c in cs],
        )
        timings["persons_s"] = time.perf_counter() - started
        step = time.perf_counter()
        await conn.execute("""
            INSERT INTO cases (person_id, program, status, supervision_level, org_unit_id, officer_id,
                               activated_at, details)
            SELECT p.id, (ARRAY['community_corrections','released_prisoner','drug_rehab','severe_mental_illness'])
                           [p.id % 4 + 1]::program,
                   CASE WHEN p.id % 20 = 0 THEN 'pending_intake' ELSE 'active' END::case_status,
                   (ARRAY['strict','ordinary','ordinary','relaxed'])[p.id % 4 + 1]::supervision_level,
                   p.org_unit_id,
                   (SELECT a.id FROM accounts a JOIN org_units o ON o.id = a.org_unit_id
                     WHERE o.id = u.parent_id ORDER BY a.id OFFSET p.id % 5 LIMIT 1),
                   now() - make_interval(days => (p.id % 700)::int), NULL
              FROM persons p JOIN org_units u ON u.id = p.org_unit_id""")
        timings["cases_s"] = time.perf_counter() - step
        step = time.perf_counter()
        per_case = max(1, contacts // people)
        await conn.execute("DROP INDEX case_contacts_case")
        await conn.execute(
            """
            INSERT INTO case_contacts (case_id, kind, outcome, occurred_at, recorded_by)
            SELECT c.id, (ARRAY['home_visit','office_report','phone','video'])[(c.id + k) % 4 + 1]::contact_kind,
                   (ARRAY['complied','complied','complied','attended','absent_with_reason'])[(c.id + k) % 5 + 1]
                       ::contact_outcome,
                   now() - make_interval(days => (k * 20 + c.id % 20)::int), c.officer_id
              FROM cases c, generate_series(1, $1::int) AS k""",
            per_case,
        )
        await conn.execute("CREATE INDEX case_contacts_case ON case_contacts (case_id, occurred_at DESC)")
        timings["contacts_s"] = time.perf_counter() - step
        step = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        timings["analyze_s"] = time.perf_counter() - step
        timings["persons"] = await conn.fetchval("SELECT count(*) FROM persons")
        timings["contacts"] = await conn.fetchval("SELECT count(*) FROM case_contacts")
    finally:
        await conn.close()
    return timings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(dsn: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "CASEMGR_ENV": "development",
        "CASEMGR_MFA_REQUIRED": "false",
        "CASEMGR_LOG_LEVEL": "WARNING",
        # Every client of a benchmark is one address on loopback: the per-address limits are off.
        "CASEMGR_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0",
        "CASEMGR_RATE_LIMIT_LOGINS_PER_ADDRESS_PER_MINUTE": "0",
        "CASEMGR_DATA_KEYS": "b1:" + base64.b64encode(os.urandom(32)).decode(),
        "CASEMGR_TASK_ENGINE_INTERVAL_SECONDS": "0",
        "CASEMGR_DB_POOL_MAX": "20",
        # The same hashing cost as the loaded accounts: logins are not what is measured here.
        "CASEMGR_ARGON2_TIME_COST": "1",
        "CASEMGR_ARGON2_MEMORY_KIB": "1024",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "casemgr", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the service did not start")


async def officer(
    client: httpx.AsyncClient,
    token: str,
    record_from: float,
    stop_at: float,
    samples: dict[str, list[float]],
    rng: random.Random,
    think_s: float,
) -> None:
    """One officer: caseload, search, open a case, again, until stop_at."""
    headers = {"Authorization": f"Bearer {token}"}
    case_ids: list[int] = []
    names = [s + g for s in SURNAMES[:20] for g in GIVEN[:10]]
    while time.monotonic() < stop_at:
        for op in ("caseload", "search", "open_case"):
            started = time.perf_counter()
            if op == "caseload":
                response = await client.get(
                    "/cases", params={"limit": 50, "status": "active"}, headers=headers
                )
                case_ids = [c["id"] for c in response.json()["items"]] or case_ids
            elif op == "search":
                q = rng.choice([rng.choice(names), romanise(rng.choice(names))[1]])
                response = await client.get("/people", params={"q": q, "limit": 20}, headers=headers)
            else:
                if not case_ids:
                    continue
                response = await client.get(f"/cases/{rng.choice(case_ids)}", headers={**headers, **PURPOSE})
            response.raise_for_status()
            if time.monotonic() >= record_from:  # after the warm-up (connections, prepared statements)
                samples[op].append((time.perf_counter() - started) * 1000)
            if think_s > 0:  # an officer reads what they got before the next click
                await asyncio.sleep(rng.expovariate(1 / think_s))


async def drive(port: int, usernames: list[str], seconds: float, think_s: float) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"caseload": [], "search": [], "open_case": []}
    rng = random.Random(11643)
    clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) for _ in usernames]
    try:
        tokens = []
        for client, username in zip(clients, usernames, strict=True):  # logins before the clock starts
            login = await client.post("/auth/login", json={"username": username, "password": PASSWORD})
            login.raise_for_status()
            tokens.append(login.json()["token"])
        record_from = time.monotonic() + WARM_UP_SECONDS
        stop_at = record_from + seconds
        await asyncio.gather(
            *(
                officer(c, t, record_from, stop_at, samples, random.Random(rng.random()), think_s)
                for c, t in zip(clients, tokens, strict=True)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=10_000_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--think-ms",
        type=float,
        default=1000,
        help="mean pause between an officer's requests (0: back to back, to find the ceiling)",
    )
    parser.add_argument("--database", default="casemgr_bench")
    parser.add_argument("--reuse", action="store_true", help="keep the database loaded by an earlier run")
    args = parser.parse_args()

    async def prepare() -> tuple[str, dict[str, float]]:
        if args.reuse:
            return with_database(admin_url(), args.database), {}
        dsn = await create_database(args.database)
        await apply_migrations(dsn)
        return dsn, await load(dsn, args.people, args.contacts)

    dsn, loading = asyncio.run(prepare())
    print("loaded:", json.dumps({k: round(v, 1) for k, v in loading.items()}))
    port = free_port()
    server = start_server(dsn, port, args.workers)
    try:
        offices = [
            2
            + 1
            + d * (1 + OFFICES_PER_DISTRICT * (1 + COMMUNITIES_PER_OFFICE))
            + o * (1 + COMMUNITIES_PER_OFFICE)
            for d in range(DISTRICTS)
            for o in range(OFFICES_PER_DISTRICT)
        ]
        usernames = [
            f"officer.{offices[i % len(offices)]}.{1 + i // len(offices) % OFFICERS_PER_OFFICE}"
            for i in range(args.concurrency)
        ]
        samples = asyncio.run(drive(port, usernames, args.seconds, args.think_ms / 1000))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    result = {
        **facts("case_files"),
        "python": platform.python_version(),
        "people": args.people,
        "contacts": args.contacts,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "workers": args.workers,
        "think_ms": args.think_ms,
        "loading": loading,
        "operations": {
            op: {
                "count": len(v),
                "per_second": round(len(v) / args.seconds, 1),
                "p50_ms": round(statistics.median(v), 2),
                "p95_ms": round(percentile(v, 0.95), 2),
                "p99_ms": round(percentile(v, 0.99), 2),
                "target_p99_ms": 50,
                "meets_target": percentile(v, 0.99) <= 50,
            }
            for op, v in samples.items()
            if v
        },
    }
    lines = [
        "| operation | requests | per second | p50 ms | p95 ms | p99 ms | target p99 | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for op, figures in result["operations"].items():  # type: ignore[union-attr]
        lines.append(
            f"| {op} | {figures['count']} | {figures['per_second']} | {figures['p50_ms']} | "
            f"{figures['p95_ms']} | {figures['p99_ms']} | 50 | "
            f"{'meets' if figures['meets_target'] else 'MISSES'} |"
        )
    table = "\n".join(lines)
    heading = (
        f"{args.people:,} people, {args.contacts:,} contacts, {args.concurrency} officers, "
        f"{args.workers} workers, {args.think_ms:.0f} ms mean think time, {args.seconds:.0f} s, "
        f"on {machine()}"
    )
    write_results(
        f"case-files-{args.people}p-w{args.workers}-think{args.think_ms:.0f}", result, heading, table
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
