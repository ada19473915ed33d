"""The demo city: an org tree, accounts for every role, and thousands of synthetic people
across the four programs with their cases, program details, contact history and tasks.

Every name and number here is made up (ID numbers carry valid GB 11643 check characters).
Running it twice changes nothing: the city's code marks it as seeded. Rows go in with
``INSERT ... SELECT FROM unnest(...)``, a few thousand per statement.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import asyncpg
import msgspec

from casemgr import audit
from casemgr.admin_tasks import cli_context, create_account, ensure_city, set_scope
from casemgr.auth.passwords import Passwords
from casemgr.auth.principal import Role
from casemgr.cases import programs
from casemgr.crypto import Keyring
from casemgr.people.id_number import check_character
from casemgr.people.names import romanise

CITY_CODE = "DEMO"
DEMO_PASSWORD = "demo-password-2026"
DEFAULT_PEOPLE = 3000

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
    DemoLogin(username="supervisor.west", role=Role.SUPERVISOR, unit="DEMO-W"),
    DemoLogin(username="officer.riverside", role=Role.OFFICER, unit="DEMO-E-RIV"),
    DemoLogin(username="officer.riverside2", role=Role.OFFICER, unit="DEMO-E-RIV"),
    DemoLogin(username="officer.harbour", role=Role.OFFICER, unit="DEMO-E-HBR"),
    DemoLogin(username="officer.hillside", role=Role.OFFICER, unit="DEMO-W-HIL"),
    DemoLogin(username="officer.market", role=Role.OFFICER, unit="DEMO-W-MKT"),
    DemoLogin(username="health.east", role=Role.HEALTH_WORKER, unit="DEMO-E"),
    DemoLogin(username="police.east", role=Role.POLICE_LIAISON, unit="DEMO-E"),
]
# Where each officer's people live: (officer, the units of their caseload).
_CASELOADS = [
    ("officer.riverside", ["DEMO-E-RIV-1", "DEMO-E-RIV-1-G1", "DEMO-E-RIV-1-G2"]),
    ("officer.riverside2", ["DEMO-E-RIV-2", "DEMO-E-RIV"]),
    ("officer.harbour", ["DEMO-E-HBR-1", "DEMO-E-HBR"]),
    ("officer.hillside", ["DEMO-W-HIL-1", "DEMO-W-HIL-1-G1"]),
    ("officer.market", ["DEMO-W-MKT-1", "DEMO-W-MKT"]),
]

# The hundred most common surnames, and given-name characters as they are used.
SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红娥玲建国志文辉斌宇浩凯鹏飞鑫波宁欣怡晨")
_REGIONS = ["110101", "110102", "110105", "110106", "110108", "310101", "440103", "510104"]
PROGRAMS = ["community_corrections", "released_prisoner", "drug_rehab", "severe_mental_illness"]
# Drug tests come back negative eight times in ten.
_TEST_RESULTS: list[Literal["negative", "positive", "refused", "invalid"]] = [
    "negative", "negative", "negative", "negative", "negative", "negative", "negative", "negative",
    "positive", "refused",
]  # fmt: skip
_ICD10 = ["F20.0", "F20.9", "F25.0", "F31.2", "F06.2", "F32.3"]

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
_INSERT_PEOPLE = """
INSERT INTO persons (full_name, name_pinyin, name_initials, sex, birth_date, id_number, org_unit_id,
                     created_by, phones)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::text[], $7::bigint[],
                     $8::bigint[], $9::jsonb[])
RETURNING id
"""
_INSERT_CASES = """
INSERT INTO cases (person_id, program, status, supervision_level, org_unit_id, officer_id, shared_with_police,
                   activated_at, closure_reason, closed_at, details)
SELECT p, pr::program, st::case_status, lv::supervision_level, u, o, sh, act, cr::closure_reason, cl, d
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::boolean[],
              $8::timestamptz[], $9::text[], $10::timestamptz[], $11::jsonb[])
       AS t(p, pr, st, lv, u, o, sh, act, cr, cl, d)
RETURNING id
"""
_SET_SEALED = """
UPDATE cases SET sealed_details = t.s FROM unnest($1::bigint[], $2::bytea[]) AS t(id, s) WHERE cases.id = t.id
"""
_INSERT_CONTACTS = """
INSERT INTO case_contacts (case_id, kind, outcome, occurred_at, recorded_by)
SELECT c, k::contact_kind, o::contact_outcome, at, by
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[]) AS t(c, k, o, at, by)
"""
_INSERT_DONE_TASKS = """
INSERT INTO tasks (case_id, kind, due_at, status, completed_at, completed_by)
SELECT c, 'assessment_due', due, 'done', done, by
  FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::bigint[]) AS t(c, due, done, by)
"""
_INSERT_REFERRAL = """
INSERT INTO handovers (source, source_name, target_org_unit_id, program, person, detail, anchor_date,
                       deadline, created_by)
VALUES ($1::handover_source, $2, $3, $4::program, $5::jsonb, $6::jsonb, $7, $8, $9)
"""


class DemoPerson(msgspec.Struct, frozen=True):
    full_name: str
    pinyin: str
    initials: str
    sex: str
    birth_date: date
    id_number: str


def demo_people(rng: random.Random, count: int) -> list[DemoPerson]:
    """``count`` distinct made-up people with valid ID numbers."""
    people: list[DemoPerson] = []
    seen: set[str] = set()
    while len(people) < count:
        male = rng.random() < 0.72
        birth = date(1955, 1, 1) + timedelta(days=rng.randrange(0, 365 * 48))
        serial = rng.randrange(0, 100)
        sex_digit = rng.choice((1, 3, 5, 7, 9) if male else (0, 2, 4, 6, 8))
        first17 = f"{rng.choice(_REGIONS)}{birth:%Y%m%d}{serial:02d}{sex_digit}"
        id_number = first17 + check_character(first17)
        if id_number in seen:
            continue
        seen.add(id_number)
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
        pinyin, initials = romanise(name)
        people.append(
            DemoPerson(
                full_name=name,
                pinyin=pinyin,
                initials=initials,
                sex="male" if male else "female",
                birth_date=birth,
                id_number=id_number,
            )
        )
    return people


def _term_end(start: date, days: int, now: datetime) -> date:
    """The end of a term of `days` from `start`; a term that would have ended already ends later
    (a case under supervision today has its end ahead of it)."""
    end = start + timedelta(days=days)
    return end if end > now.date() else now.date() + timedelta(days=days // 2)


def demo_detail(rng: random.Random, program: str, start: datetime, now: datetime) -> programs.ProgramDetail:
    day = start.date()
    detail: programs.ProgramDetail
    if program == "community_corrections":
        detail = programs.CommunityCorrections(
            sentence_type=rng.choice(
                ["probation", "probation", "control", "parole", "temporary_service_outside_prison"]
            ),
            court=rng.choice(["East District Court", "West District Court", "City Intermediate Court"]),
            judgment_date=day - timedelta(days=20),
            judgment_effective_date=day - timedelta(days=10),
            supervision_start=day,
            supervision_end=_term_end(day, rng.choice((180, 365, 730)), now),
            conditions=["report to the office monthly", "notify any change of address"],
            prohibitions=rng.sample(
                ["no entry to bars", "no contact with the victim", "no travel outside the city"], 2
            ),
        )
    elif program == "released_prisoner":
        detail = programs.ReleasedPrisoner(
            prison=rng.choice(["North Prison", "City Prison No. 2", "Women's Prison"]),
            release_date=day,
            assessment_risk=rng.choice(["low", "low", "medium", "high"]),
            resettlement_needs=rng.sample(["housing", "employment", "training", "benefits", "family"], 2),
            must_meet=rng.random() < 0.15,
        )
    elif program == "drug_rehab":
        tests = [
            programs.DrugTest(
                date=day + timedelta(days=30 * k),
                result=rng.choice(_TEST_RESULTS),
            )
            for k in range(1, 5)
        ]
        tests = [test for test in tests if test.date <= now.date()]  # only those taken by now
        detail = programs.DrugRehab(
            kind=rng.choice(["community_rehabilitation", "community_recovery"]),
            agreement_start=day,
            agreement_end=day + timedelta(days=3 * 365),
            drug_test_interval_days=30,
            drug_tests=tests,
            relapses=[
                programs.Relapse(date=t.date, substance="methamphetamine")
                for t in tests
                if t.result == "positive"
            ],
        )
    else:
        detail = programs.SevereMentalIllness(
            risk_grade=rng.choice([0, 1, 1, 2, 2, 3, 4, 5]),
            diagnosis_icd10=rng.choice(_ICD10),
            treatment_status=rng.choice(["in_treatment", "in_treatment", "not_in_treatment"]),
            medication_status=rng.choice(["regular", "regular", "irregular", "none"]),
            hospital="City Mental Health Centre",
        )
    return detail


async def _unnest(
    conn: asyncpg.Connection, statement: str, columns: Sequence[list[Any]], batch: int = 5000
) -> list[int]:
    """Run an unnest insert over columns of equal length, ``batch`` rows at a time."""
    ids: list[int] = []
    for start in range(0, len(columns[0]), batch):
        chunk = [column[start : start + batch] for column in columns]
        if "RETURNING" in statement:
            ids += [r[0] for r in await conn.fetch(statement, *chunk)]
        else:
            await conn.execute(statement, *chunk)
    return ids


async def seed_demo(
    conn: asyncpg.Connection,
    passwords: Passwords,
    keyring: Keyring,
    people: int = DEFAULT_PEOPLE,
    now: datetime | None = None,
) -> bool:
    """Seed the demo city; returns False when it was already there."""
    now = now or datetime.now(UTC)
    ctx = cli_context()
    rng = random.Random(2026)
    async with conn.transaction():
        if await conn.fetchval(_UNIT_ID, CITY_CODE) is not None:
            return False
        _, city_path = await ensure_city(conn, code=CITY_CODE, name="Demo City")
        for code, name, kind, parent in _UNITS:
            await conn.execute(_INSERT_UNIT, code, name, kind, parent)
        for login in DEMO_LOGINS:
            await create_account(
                conn,
                passwords,
                username=login.username,
                display_name=login.username.replace(".", " ").title(),
                role=login.role,
                org_unit_code=login.unit,
                password=DEMO_PASSWORD,
                ctx=ctx,
            )
        await set_scope(conn, role=Role.SUPERVISOR, scope=city_path)
        caseloads = [
            (await conn.fetchval(_ACCOUNT_ID, officer), [await conn.fetchval(_UNIT_ID, u) for u in units])
            for officer, units in _CASELOADS
        ]

        demo = demo_people(rng, people)
        homes = [rng.choice(caseloads) for _ in demo]
        person_ids = await _unnest(
            conn,
            _INSERT_PEOPLE,
            [
                [p.full_name for p in demo],
                [p.pinyin for p in demo],
                [p.initials for p in demo],
                [p.sex for p in demo],
                [p.birth_date for p in demo],
                [p.id_number for p in demo],
                [rng.choice(units) for _, units in homes],
                [officer for officer, _ in homes],
                [f'[{{"number": "139{rng.randrange(10**7, 10**8)}", "label": "mobile"}}]' for _ in demo],
            ],
        )

        rows: list[tuple[Any, ...]] = []
        for person_id, (officer, units) in zip(person_ids, homes, strict=True):
            programs_held = [rng.choice(PROGRAMS)]
            if rng.random() < 0.08:  # some people are in two programs
                programs_held.append(rng.choice([p for p in PROGRAMS if p != programs_held[0]]))
            for program in programs_held:
                status = rng.choices(["active", "pending_intake", "suspended", "closed"], [80, 6, 4, 10])[0]
                start = now - timedelta(days=rng.randrange(20, 700))
                rows.append(
                    (
                        person_id,
                        program,
                        status,
                        rng.choices(["strict", "ordinary", "relaxed"], [2, 6, 2])[0],
                        rng.choice(units),
                        officer,
                        program == "community_corrections" and rng.random() < 0.3,
                        None if status == "pending_intake" else start,
                        "term_expired" if status == "closed" else None,
                        now - timedelta(days=rng.randrange(1, 20)) if status == "closed" else None,
                        demo_detail(rng, program, start, now),
                    )
                )
        public_parts, sensitive_parts = zip(*(programs.split(r[10]) for r in rows), strict=True)
        case_ids = await _unnest(
            conn,
            _INSERT_CASES,
            [
                *[[r[i] for r in rows] for i in range(10)],
                [msgspec.json.encode(p).decode() for p in public_parts],
            ],
        )
        sealed = [
            (cid, programs.seal(keyring, cid, s))
            for cid, s in zip(case_ids, sensitive_parts, strict=True)
            if s
        ]
        await _unnest(conn, _SET_SEALED, [[c for c, _ in sealed], [s for _, s in sealed]])

        # A contact history: every two weeks or so since the case began, mostly complied.
        contacts: list[list[Any]] = [[], [], [], [], []]
        done: list[list[Any]] = [[], [], [], []]
        for case_id, row in zip(case_ids, rows, strict=True):
            started, officer = row[7], row[5]
            if started is None:
                continue
            at = started + timedelta(days=rng.randrange(3, 10))
            until = row[9] or now
            while at < until - timedelta(days=1):
                contacts[0].append(case_id)
                contacts[1].append(
                    rng.choice(["home_visit", "office_report", "office_report", "phone", "video"])
                )
                contacts[2].append(
                    rng.choices(
                        ["complied", "attended", "absent_with_reason", "absent_without_reason"],
                        [70, 20, 6, 4],
                    )[0]
                )
                contacts[3].append(at)
                contacts[4].append(officer)
                at += timedelta(days=rng.randrange(10, 35))
            due = started + timedelta(days=90)
            while due < until:
                done[0].append(case_id)
                done[1].append(due)
                done[2].append(due - timedelta(days=rng.randrange(0, 5)))
                done[3].append(officer)
                due += timedelta(days=90)
        await _unnest(conn, _INSERT_CONTACTS, contacts, batch=20000)
        await _unnest(conn, _INSERT_DONE_TASKS, done, batch=20000)

        # A few referrals waiting for the offices to take them on; two already late.
        riverside = await conn.fetchval(_UNIT_ID, "DEMO-E-RIV")
        supervisor = await conn.fetchval(_ACCOUNT_ID, "supervisor.city")
        for person, days in zip(demo_people(random.Random(7), 5), (-3, -1, 4, 8, 12), strict=True):
            effective = (now + timedelta(days=days - 10)).date()
            await conn.execute(
                _INSERT_REFERRAL,
                "court",
                "East District Court",
                riverside,
                "community_corrections",
                msgspec.json.encode(
                    {
                        "full_name": person.full_name,
                        "sex": person.sex,
                        "birth_date": person.birth_date,
                        "id_number": person.id_number,
                    }
                ).decode(),
                msgspec.json.encode(
                    {
                        "program": "community_corrections",
                        "sentence_type": "probation",
                        "court": "East District Court",
                        "judgment_date": effective,
                        "judgment_effective_date": effective,
                    }
                ).decode(),
                effective,
                datetime.combine(effective + timedelta(days=11), datetime.min.time(), UTC),
                supervisor,
            )
        await audit.record(conn, ctx, "demo.seed", object_type="org_unit", reason="demo_seed")
    return True
