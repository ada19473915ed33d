"""Shared fixtures: a private database per test run, the real Redis, and a small world.

Each run creates its own database (``casemgr_test_<random>``) on the PostgreSQL server of
``CASEMGR_TEST_DATABASE_URL`` (else ``DATABASE_URL``, else the local default), applies every
migration to it, and drops it at the end. Each test that needs org units and accounts
builds its own city (``world``), so tests do not see each other's data even though they
share the database.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from casemgr.app import create_app
from casemgr.auth import totp
from casemgr.auth.passwords import Passwords
from casemgr.auth.principal import MfaState, Role
from casemgr.clock import ManualClock
from casemgr.config import Settings, load_settings
from casemgr.db import create_pool
from casemgr.migrate import apply_migrations
from casemgr.resources import Resources

ADMIN_DSN = (
    os.environ.get("CASEMGR_TEST_DATABASE_URL")
    or os.environ.get("DATABASE_URL")
    or "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = (
    os.environ.get("CASEMGR_TEST_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
)
PASSWORD = "correct horse battery staple"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
DATA_KEY = "t1:" + base64.b64encode(b"k" * 32).decode()


def dsn_for_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def create_empty_database() -> str:
    name = f"casemgr_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return dsn_for_database(ADMIN_DSN, name)


async def drop_database(dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_settings(database_url: str, **overrides: str) -> Settings:
    env = {
        "CASEMGR_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "CASEMGR_DATA_KEYS": DATA_KEY,
        "CASEMGR_ARGON2_TIME_COST": "1",
        "CASEMGR_ARGON2_MEMORY_KIB": "1024",
        "CASEMGR_DB_POOL_MIN": "1",
        "CASEMGR_DB_POOL_MAX": "8",
        "CASEMGR_LOG_FORMAT": "console",
        # The tracking keys of this run live apart from any other run's, in few shards.
        "CASEMGR_TRACKING_NAMESPACE": f"trk{uuid.uuid4().hex[:8]}",
        "CASEMGR_TRACKING_SHARDS": "4",
        # The suite sends thousands of requests from one address; the limits have tests of their own.
        "CASEMGR_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0",
        "CASEMGR_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE": "0",
        "CASEMGR_RATE_LIMIT_LOGINS_PER_ADDRESS_PER_MINUTE": "0",
        **overrides,
    }
    return load_settings(env)


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    dsn = await create_empty_database()
    await apply_migrations(dsn)
    yield dsn
    await drop_database(dsn)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def app_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.app_database_url, min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    async for key in client.scan_iter(match=f"{settings.tracking_namespace}:*", count=1000):
        await client.delete(key)  # what the run's monitoring tests published
    await client.aclose()


@pytest.fixture
async def owner(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the database owner (a superuser here): set-up and inspection."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture(scope="session")
def passwords(settings: Settings) -> Passwords:
    return Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


@pytest.fixture
def resources(settings: Settings, clock: ManualClock, app_pool: asyncpg.Pool, redis: Redis) -> Resources:
    return Resources.assemble(settings, pool=app_pool, redis=redis, clock=clock)


@pytest.fixture
async def client(settings: Settings, resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, resources=resources)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://casemgr.test") as c:
        yield c


# --- a small world per test ------------------------------------------------------------


@dataclass
class Unit:
    id: int
    path: str
    code: str


@dataclass
class Account:
    id: int
    username: str
    role: Role
    unit: Unit


@dataclass
class World:
    """One city per test:

    city ── d1 ── o1 ── c1          d1, d2: districts; o1..o3: offices; c1: community
         │     └─ o2
         └─ d2 ── o3
    """

    units: dict[str, Unit] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    cases: dict[str, int] = field(default_factory=dict)
    persons: dict[str, int] = field(default_factory=dict)
    # An open assessment task on each case, due in a week.
    tasks: dict[str, int] = field(default_factory=dict)
    # A pending court referral to each office.
    handovers: dict[str, int] = field(default_factory=dict)
    # A service referral and a document on each case.
    service_referrals: dict[str, int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    # On each community-corrections case: an order in force (asked for by the case's officer,
    # approved by sup_city), a device of the case's office fitted to it, an exclusion zone and
    # a renewal waiting for a decision.
    orders: dict[str, int] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)
    zones: dict[str, int] = field(default_factory=dict)
    renewals: dict[str, int] = field(default_factory=dict)
    # A strap-tamper alert from the tracking core, new, on each community-corrections case.
    alerts: dict[str, int] = field(default_factory=dict)
    # An authorised absence covering the zone, next week.
    absences: dict[str, int] = field(default_factory=dict)
    # A proposal to revoke, waiting for the office head's sign-off.
    enforcement: dict[str, int] = field(default_factory=dict)
    # An SMS notification endpoint of district d2 (for the walks over its routes).
    endpoints: dict[str, int] = field(default_factory=dict)


_TREE = [
    ("city", "city", None),
    ("d1", "district", "city"),
    ("d2", "district", "city"),
    ("o1", "office", "d1"),
    ("o2", "office", "d1"),
    ("o3", "office", "d2"),
    ("c1", "community", "o1"),
]
_ACCOUNTS = [
    ("admin", Role.ADMIN, "city"),
    ("admin_d1", Role.ADMIN, "d1"),
    ("auditor", Role.AUDITOR, "city"),
    ("auditor_d1", Role.AUDITOR, "d1"),
    ("sup_city", Role.SUPERVISOR, "city"),
    ("sup_d1", Role.SUPERVISOR, "d1"),
    ("sup_d2", Role.SUPERVISOR, "d2"),
    ("off1", Role.OFFICER, "o1"),
    ("off1c", Role.OFFICER, "c1"),
    ("off2", Role.OFFICER, "o2"),
    ("off3", Role.OFFICER, "o3"),
    ("health_d1", Role.HEALTH_WORKER, "d1"),
    ("police_d1", Role.POLICE_LIAISON, "d1"),
]
# name: (program, unit, officer, shared_with_police)
_CASES = {
    "cc_o1": ("community_corrections", "c1", "off1", True),
    "smi_o1": ("severe_mental_illness", "o1", "off1c", False),
    "drug_o2": ("drug_rehab", "o2", "off2", False),
    "cc_o3": ("community_corrections", "o3", "off3", False),
}


@pytest.fixture
async def world(owner: asyncpg.Connection, passwords: Passwords, resources: Resources) -> World:
    tag = uuid.uuid4().hex[:8]
    w = World()
    password_hash = await passwords.hash(PASSWORD)
    async with owner.transaction():
        for name, kind, parent in _TREE:
            parent_unit = w.units.get(parent) if parent else None
            uid = await owner.fetchval("SELECT nextval(pg_get_serial_sequence('org_units','id'))")
            path = (parent_unit.path + "." if parent_unit else "") + f"n{uid}"
            code = f"T{tag}-{name}"
            await owner.execute(
                "INSERT INTO org_units (id, parent_id, kind, name, code, path) "
                "VALUES ($1, $2, $3, $4, $5, $6::ltree)",
                uid,
                parent_unit.id if parent_unit else None,
                kind,
                f"{name} {tag}",
                code,
                path,
            )
            w.units[name] = Unit(id=uid, path=path, code=code)
        for name, role, unit in _ACCOUNTS:
            username = f"{name.replace('_', '.')}.{tag}"
            aid = await owner.fetchval(
                "INSERT INTO accounts (username, display_name, role, org_unit_id, password_hash, "
                "totp_secret, totp_confirmed_at) VALUES ($1, $2, $3, $4, $5, NULL, NULL) "
                "RETURNING id",
                username,
                name,
                role.value,
                w.units[unit].id,
                password_hash,
            )
            sealed = resources.keyring.seal(TOTP_SECRET.encode(), f"accounts.totp_secret:{aid}".encode())
            await owner.execute(
                "UPDATE accounts SET totp_secret = $2, totp_confirmed_at = now() WHERE id = $1",
                aid,
                sealed,
            )
            w.accounts[name] = Account(id=aid, username=username, role=role, unit=w.units[unit])
        for n, (name, (program, unit, officer, shared)) in enumerate(_CASES.items()):
            pid = await owner.fetchval(
                "INSERT INTO persons (full_name, sex, birth_date, org_unit_id) "
                "VALUES ($1, 'male', '1980-01-01', $2) RETURNING id",
                f"Person {name} {tag} {n}",
                w.units[unit].id,
            )
            cid = await owner.fetchval(
                "INSERT INTO cases (person_id, program, status, org_unit_id, officer_id, "
                "shared_with_police) VALUES ($1, $2, 'active', $3, $4, $5) RETURNING id",
                pid,
                program,
                w.units[unit].id,
                w.accounts[officer].id,
                shared,
            )
            w.cases[name] = cid
            w.persons[name] = pid
            w.tasks[name] = await owner.fetchval(
                "INSERT INTO tasks (case_id, kind, due_at) VALUES ($1, 'assessment_due', "
                "now() + interval '7 days') RETURNING id",
                cid,
            )
            w.service_referrals[name] = await owner.fetchval(
                "INSERT INTO service_referrals (case_id, service, provider, created_by) "
                "VALUES ($1, 'employment', 'Job Centre', $2) RETURNING id",
                cid,
                w.accounts[officer].id,
            )
            w.documents[name] = await owner.fetchval(
                "INSERT INTO case_documents (case_id, filename, content_type, size_bytes, sha256, sealed, "
                "created_by) VALUES ($1, 'order.pdf', 'application/pdf', 5, '\\x00', '\\x00', $2) "
                "RETURNING id",
                cid,
                w.accounts[officer].id,
            )
            if program == "community_corrections":
                await _monitor(owner, w, name, cid, unit, officer, tag)
        w.endpoints["d2"] = await owner.fetchval(
            "INSERT INTO notification_endpoints (org_unit_id, channel, target, severities, created_by, "
            "created_at) VALUES ($1, 'sms', '+8613800000000', ARRAY['critical']::alert_severity[], $2, "
            "now()) RETURNING id",
            w.units["d2"].id,
            w.accounts["sup_d2"].id,
        )
        for office in ("o1", "o3"):
            w.handovers[office] = await owner.fetchval(
                "INSERT INTO handovers (source, source_name, target_org_unit_id, program, person, deadline, "
                "created_by) VALUES ('court', 'District Court', $1, 'community_corrections', $2::jsonb, "
                "now() + interval '10 days', $3) RETURNING id",
                w.units[office].id,
                '{"full_name": "Referred Person", "sex": "male", "birth_date": "1990-01-01"}',
                w.accounts["sup_city"].id,
            )
    return w


async def _monitor(
    owner: asyncpg.Connection, w: World, name: str, case_id: int, unit: str, officer: str, tag: str
) -> None:
    officer_id, approver_id = w.accounts[officer].id, w.accounts["sup_city"].id
    order_id = await owner.fetchval(
        "INSERT INTO monitoring_orders (case_id, reason_code, legal_basis, assessment_ref, status, "
        "requested_by, requested_at, decided_by, decided_at, starts_at, first_ends_at, ends_at) "
        "VALUES ($1, 'court_curfew', "
        "'judgment 1', 'assessment 1', 'active', $2, now(), $3, now(), now() - interval '1 day', "
        "now() + interval '60 days', now() + interval '60 days') RETURNING id",
        case_id,
        officer_id,
        approver_id,
    )
    device_id = f"W{tag}-{name}"
    await owner.execute(
        "INSERT INTO devices (id, org_unit_id, secret_sealed, reporting_interval_s, registered_by, "
        "registered_at) VALUES ($1, $2, '\\x00', 60, $3, now())",
        device_id,
        w.units[unit].id,
        approver_id,
    )
    await owner.execute(
        "INSERT INTO device_assignments (device_id, order_id, assigned_by, assigned_at) "
        "VALUES ($1, $2, $3, now())",
        device_id,
        order_id,
        officer_id,
    )
    w.zones[name] = await owner.fetchval(
        "INSERT INTO zones (order_id, kind, label, shape, created_by, created_at) VALUES ($1, 'exclusion', "
        '\'school\', \'{"type": "circle", "centre": [121.47, 31.23], "radius_m": 200}\', $2, now()) '
        "RETURNING id",
        order_id,
        officer_id,
    )
    w.renewals[name] = await owner.fetchval(
        "INSERT INTO monitoring_renewals (order_id, assessment_ref, previous_ends_at, new_ends_at, "
        "requested_by, requested_at) "
        "SELECT id, 'assessment 2', ends_at, ends_at + interval '30 days', $2, now() "
        "FROM monitoring_orders WHERE id = $1 RETURNING id",
        order_id,
        officer_id,
    )
    w.orders[name] = order_id
    w.devices[name] = device_id
    w.enforcement[name] = await owner.fetchval(
        "INSERT INTO enforcement_actions (case_id, kind, status, note, created_by, created_at) "
        "VALUES ($1, 'revocation_proposal', 'proposed', 'repeated curfew breaches', $2, now()) RETURNING id",
        case_id,
        officer_id,
    )
    w.absences[name] = await owner.fetchval(
        "INSERT INTO absence_permissions (order_id, zone_ids, starts_at, ends_at, reason, granted_by, "
        "granted_at) VALUES ($1, ARRAY[$2::bigint], now() + interval '7 days', now() + interval '8 days', "
        "'travel', $3, now()) "
        "RETURNING id",
        order_id,
        w.zones[name],
        officer_id,
    )
    w.alerts[name] = await owner.fetchval(
        "INSERT INTO alerts (kind, severity, org_unit_id, case_id, order_id, raised_at, details, dedupe_key, "
        "event_id) VALUES ('strap_tamper', 'critical', $1, $2, $3, now(), $4::jsonb, $5, $5) RETURNING id",
        w.units[unit].id,
        case_id,
        order_id,
        f'{{"device_id": "{device_id}", "fixes": [1]}}',
        f"em:{order_id}:strap_tamper::{tag}",
    )


def scope_for(account: Account, world: World) -> str:
    if account.role is Role.OFFICER:
        # The officer's office: the unit itself if it is an office, else its parent office.
        for name in ("o1", "o2", "o3"):
            office = world.units[name]
            if account.unit.path == office.path or account.unit.path.startswith(office.path + "."):
                return office.path
    return account.unit.path


@pytest.fixture
def login_as(resources: Resources, world: World):  # type: ignore[no-untyped-def]
    """Issue a fully authenticated session for a world account; returns its headers."""

    async def issue(
        name: str, *, purpose: str | None = None, mfa: MfaState = MfaState.PASSED
    ) -> dict[str, str]:
        account = world.accounts[name]
        issued = await resources.sessions.issue(
            account_id=account.id,
            role=account.role,
            org_unit_id=account.unit.id,
            scope=scope_for(account, world),
            mfa=mfa,
        )
        headers = {"Authorization": f"Bearer {issued.token}"}
        if purpose:
            headers["X-Purpose"] = purpose
        return headers

    return issue


def totp_code(clock: ManualClock) -> str:
    return totp.code_at(TOTP_SECRET, clock.now())


async def audit_rows(owner: asyncpg.Connection, request_id: str) -> list[asyncpg.Record]:
    return await owner.fetch("SELECT * FROM audit_log WHERE request_id = $1 ORDER BY id", request_id)


def id_number_for(birth: str, male: bool, serial: int | None = None) -> str:
    """A valid 18-character ID number for a birth date (YYYY-MM-DD), random unless serial given."""
    from casemgr.people.id_number import check_character

    # A random region code as well as a random serial: tests share one database, and a fixed
    # region left only 50 numbers per birth date and sex, which two tests could both draw.
    rnd = uuid.uuid4().int
    serial = serial if serial is not None else rnd % 50
    region = 110000 + (rnd >> 8) % 800000
    sex_digit = serial * 2 % 10 + (1 if male else 0)
    first17 = f"{region:06d}{birth.replace('-', '')}{serial % 100:02d}{sex_digit}"
    return first17 + check_character(first17)
