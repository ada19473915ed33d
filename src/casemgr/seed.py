"""The demo city: an org tree, one account per role, and a few dozen synthetic cases.

Every name and number here is made up. Running it twice changes nothing: the city's code
marks it as seeded.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import asyncpg
import msgspec

from casemgr import audit
from casemgr.admin_tasks import cli_context, create_account, ensure_city, set_scope
from casemgr.auth.passwords import Passwords
from casemgr.auth.principal import Role
from casemgr.people.id_number import check_character
from casemgr.people.names import romanise

CITY_CODE = "DEMO"
DEMO_PASSWORD = "demo-password-2026"

# (code, name, kind, parent code)
_UNITS = [
    ("DEMO-E", "East District Justice Bureau", "district", CITY_CODE),
    ("DEMO-W", "West District Justice Bureau", "district", CITY_CODE),
    ("DEMO-E-RIV", "Riverside Justice Office", "office", "DEMO-E"),
    ("DEMO-E-HBR", "Harbour Justice Office", "office", "DEMO-E"),
    ("DEMO-W-HIL", "Hillside Justice Office", "office", "DEMO-W"),
    ("DEMO-W-MKT", "Market Street Justice Office", "office", "DEMO-W"),
    ("DEMO-E-RIV-1", "Willow Lane Community", "community", "DEMO-E-RIV"),
    ("DEMO-E-RIV-2", "Ferry Road Community", "community", "DEMO-E-RIV"),
    ("DEMO-E-HBR-1", "Dockside Community", "community", "DEMO-E-HBR"),
    ("DEMO-W-HIL-1", "Pine Hill Community", "community", "DEMO-W-HIL"),
    ("DEMO-W-MKT-1", "Old Market Community", "community", "DEMO-W-MKT"),
    ("DEMO-E-RIV-1-G1", "Willow Lane Grid 1", "grid", "DEMO-E-RIV-1"),
    ("DEMO-E-RIV-1-G2", "Willow Lane Grid 2", "grid", "DEMO-E-RIV-1"),
    ("DEMO-W-HIL-1-G1", "Pine Hill Grid 1", "grid", "DEMO-W-HIL-1"),
]


class DemoLogin(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    role: Role
    unit: str


DEMO_LOGINS = [
    DemoLogin(username="admin", role=Role.ADMIN, unit=CITY_CODE),
    DemoLogin(username="auditor", role=Role.AUDITOR, unit=CITY_CODE),
    DemoLogin(username="supervisor.city", role=Role.SUPERVISOR, unit=CITY_CODE),
    DemoLogin(username="supervisor.east", role=Role.SUPERVISOR, unit="DEMO-E"),
    DemoLogin(username="officer.riverside", role=Role.OFFICER, unit="DEMO-E-RIV"),
    DemoLogin(username="officer.riverside2", role=Role.OFFICER, unit="DEMO-E-RIV"),
    DemoLogin(username="officer.hillside", role=Role.OFFICER, unit="DEMO-W-HIL"),
    DemoLogin(username="health.east", role=Role.HEALTH_WORKER, unit="DEMO-E"),
    DemoLogin(username="police.east", role=Role.POLICE_LIAISON, unit="DEMO-E"),
]

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = [
    "伟",
    "芳",
    "娜",
    "秀英",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀兰",
    "霞",
]
_PROGRAMS = ["community_corrections", "released_prisoner", "drug_rehab", "severe_mental_illness"]

_INSERT_UNIT = """
WITH parent AS (SELECT id, path FROM org_units WHERE code = $4),
     new AS (SELECT nextval(pg_get_serial_sequence('org_units', 'id')) AS id)
INSERT INTO org_units (id, parent_id, kind, name, code, path)
SELECT new.id, parent.id, $3::org_unit_kind, $2, $1, parent.path || ('n' || new.id)::ltree
  FROM new, parent
ON CONFLICT (code) DO NOTHING
"""
_UNIT_ID = "SELECT id FROM org_units WHERE code = $1"
_ACCOUNT_ID = "SELECT id FROM accounts WHERE username = $1"
_INSERT_PERSON = """
INSERT INTO persons (full_name, sex, birth_date, id_number, org_unit_id, created_by, name_pinyin,
                     name_initials)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
"""
_INSERT_CASE = """
INSERT INTO cases (person_id, program, status, org_unit_id, officer_id, shared_with_police)
VALUES ($1, $2::program, $3::case_status, $4, $5, $6) RETURNING id
"""


def _id_number(rng: random.Random, birth: date, male: bool) -> str:
    region = "110105"
    seq = rng.randrange(0, 99) * 10 + rng.choice((1, 3, 5, 7, 9) if male else (0, 2, 4, 6, 8))
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + check_character(first17)


async def seed_demo(conn: asyncpg.Connection, passwords: Passwords) -> bool:
    """Seed the demo city; returns False when it was already there."""
    ctx = cli_context()
    async with conn.transaction():
        if await conn.fetchval(_UNIT_ID, CITY_CODE) is not None:
            return False
        _, city_path = await ensure_city(conn, code=CITY_CODE, name="Demo City")
        for code, name, kind, parent in _UNITS:
            await conn.execute(_INSERT_UNIT, code, name, kind, parent)
        for login in DEMO_LOGINS:
            display = login.username.replace(".", " ").title()
            await create_account(
                conn,
                passwords,
                username=login.username,
                display_name=display,
                role=login.role,
                org_unit_code=login.unit,
                password=DEMO_PASSWORD,
                ctx=ctx,
            )
        await set_scope(conn, role=Role.SUPERVISOR, scope=city_path)
        rng = random.Random(2026)
        offices = [
            ("DEMO-E-RIV-1", "officer.riverside"),
            ("DEMO-E-RIV-2", "officer.riverside2"),
            ("DEMO-W-HIL-1", "officer.hillside"),
        ]
        for n in range(36):
            unit_code, officer = offices[n % len(offices)]
            unit_id = await conn.fetchval(_UNIT_ID, unit_code)
            officer_id = await conn.fetchval(_ACCOUNT_ID, officer)
            male = rng.random() < 0.7
            birth = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 365 * 40))
            name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
            person_id = await conn.fetchval(
                _INSERT_PERSON,
                name,
                "male" if male else "female",
                birth,
                _id_number(rng, birth, male),
                unit_id,
                officer_id,
                *romanise(name),
            )
            program = _PROGRAMS[n % len(_PROGRAMS)]
            case_id = await conn.fetchval(
                _INSERT_CASE,
                person_id,
                program,
                rng.choice(["active", "active", "pending_intake"]),
                unit_id,
                officer_id,
                program == "community_corrections" and n % 3 == 0,
            )
            await audit.record(
                conn, ctx, "case.create", object_type="case", object_id=case_id, reason="demo_seed"
            )
    return True
