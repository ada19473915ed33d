"""All SQL of persons and cases. Reads and writes pass the policies of migration 0005."""

from __future__ import annotations

import asyncpg
import msgspec

from casemgr.cases.schemas import Case, CaseLocation, CaseSummary, Person, PersonIn, Program, Sex
from casemgr.errors import Conflict

_LOCATE = """
SELECT org_unit_id, org_path::text AS org_path, officer_id, program::text AS program,
       shared_with_police
  FROM case_locator($1)
"""
_INSERT_PERSON = """
INSERT INTO persons (full_name, sex, birth_date, id_number, org_unit_id, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""
_INSERT_CASE = """
INSERT INTO cases (person_id, program, org_unit_id, officer_id)
VALUES ($1, $2::program, $3, $4)
RETURNING id
"""
_GET = """
SELECT c.id, c.program::text AS program, c.status::text AS status, c.org_unit_id,
       c.officer_id, c.shared_with_police, c.created_at,
       p.id AS person_id, p.full_name, p.sex, p.birth_date, p.id_number
  FROM cases c JOIN persons p ON p.id = c.person_id
 WHERE c.id = $1
"""
# The explicit scope filter is the application's own; the policies filter again.
_LIST = """
SELECT c.id, c.program::text AS program, c.status::text AS status, c.org_unit_id,
       c.officer_id, c.person_id, p.full_name
  FROM cases c
  JOIN persons p ON p.id = c.person_id
  JOIN org_units o ON o.id = c.org_unit_id
 WHERE o.path <@ $1::ltree
   AND ($2::program IS NULL OR c.program = $2::program)
   AND ($3::bigint IS NULL OR c.officer_id = $3)
   AND ($4::bigint IS NULL OR c.id > $4)
   AND (NOT $6::boolean OR c.shared_with_police)
 ORDER BY c.id
 LIMIT $5
"""
_UPDATE = """
UPDATE cases
   SET officer_id = coalesce($2, officer_id),
       shared_with_police = coalesce($3, shared_with_police),
       updated_at = now()
 WHERE id = $1
"""
_OFFICER_PATH = """
SELECT o.path::text FROM accounts a JOIN org_units o ON o.id = a.org_unit_id
 WHERE a.id = $1 AND a.role = 'officer' AND a.disabled_at IS NULL
"""


async def locate(conn: asyncpg.Connection, case_id: int) -> CaseLocation | None:
    record = await conn.fetchrow(_LOCATE, case_id)
    return None if record is None else msgspec.convert(dict(record), CaseLocation)


async def insert_person(
    conn: asyncpg.Connection, person: PersonIn, *, org_unit_id: int, created_by: int
) -> int:
    try:
        person_id: int = await conn.fetchval(
            _INSERT_PERSON,
            person.full_name,
            person.sex.value,
            person.birth_date,
            person.id_number,
            org_unit_id,
            created_by,
        )
    except asyncpg.UniqueViolationError as e:
        raise Conflict("a person with this ID number is already registered") from e
    return person_id


async def insert_case(
    conn: asyncpg.Connection, *, person_id: int, program: Program, org_unit_id: int, officer_id: int
) -> int:
    case_id: int = await conn.fetchval(_INSERT_CASE, person_id, program.value, org_unit_id, officer_id)
    return case_id


async def get(conn: asyncpg.Connection, case_id: int) -> Case | None:
    record = await conn.fetchrow(_GET, case_id)
    if record is None:
        return None
    values = dict(record)
    person = Person(
        id=values.pop("person_id"),
        full_name=values.pop("full_name"),
        sex=Sex(values.pop("sex")),
        birth_date=values.pop("birth_date"),
        id_number=values.pop("id_number"),
    )
    return msgspec.convert({**values, "person": person}, Case)


async def list_under(
    conn: asyncpg.Connection,
    *,
    path: str,
    program: Program | None,
    officer_id: int | None,
    after: int | None,
    limit: int,
    shared_with_police_only: bool = False,
) -> list[CaseSummary]:
    records = await conn.fetch(
        _LIST, path, program.value if program else None, officer_id, after, limit, shared_with_police_only
    )
    return [msgspec.convert(dict(r), CaseSummary) for r in records]


async def update(
    conn: asyncpg.Connection, case_id: int, *, officer_id: int | None, shared_with_police: bool | None
) -> None:
    await conn.execute(_UPDATE, case_id, officer_id, shared_with_police)


async def officer_path(conn: asyncpg.Connection, account_id: int) -> str | None:
    """The org path of an active officer account visible to the caller, else None."""
    path: str | None = await conn.fetchval(_OFFICER_PATH, account_id)
    return path
