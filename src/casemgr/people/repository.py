"""All SQL of the person registry. Reads and writes pass the persons policies."""

from __future__ import annotations

from datetime import date

import asyncpg
import msgspec

from casemgr.cases.schemas import CaseLocation
from casemgr.errors import DuplicatePerson
from casemgr.people.schemas import (
    Address,
    AddressIn,
    ContactPerson,
    Person,
    PersonCaseRef,
    PersonSummary,
    Phone,
    Sex,
)

_ID_BY_ID_NUMBER = "SELECT person_id_by_id_number($1)"
_IDS_BY_NAME_AND_BIRTH = "SELECT person_ids_by_name_and_birth($1, $2) AS id"
_LOCATE = "SELECT org_path::text AS org_path, cases FROM person_locator($1)"
_COLUMNS = """
p.id, p.full_name, p.name_pinyin, p.name_initials, p.sex, p.birth_date, p.id_number,
p.aliases, p.phones::text AS phones, p.contacts::text AS contacts, p.org_unit_id,
p.created_at, p.updated_at
"""
_GET = f"SELECT {_COLUMNS} FROM persons p WHERE p.id = $1"
_INSERT = """
INSERT INTO persons (full_name, name_pinyin, name_initials, sex, birth_date, id_number, aliases,
                     phones, contacts, org_unit_id, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11)
RETURNING id
"""
_UPDATE = """
UPDATE persons
   SET full_name = $2, name_pinyin = $3, name_initials = $4, sex = $5, birth_date = $6,
       id_number = $7, aliases = $8, phones = $9::jsonb, contacts = $10::jsonb, updated_at = now()
 WHERE id = $1
"""
_ADDRESSES = """
SELECT id, kind::text AS kind, address, valid_from, valid_to FROM person_addresses
 WHERE person_id = $1
 ORDER BY valid_to IS NOT NULL, valid_from DESC, id DESC
"""
# Close the current address of this kind the day before the new one starts.
_CLOSE_ADDRESS = """
UPDATE person_addresses SET valid_to = greatest(valid_from, $3::date - 1)
 WHERE person_id = $1 AND kind = $2::address_kind AND valid_to IS NULL
RETURNING valid_from
"""
_CURRENT_ADDRESS_START = """
SELECT valid_from FROM person_addresses
 WHERE person_id = $1 AND kind = $2::address_kind AND valid_to IS NULL
"""
_INSERT_ADDRESS = """
INSERT INTO person_addresses (person_id, kind, address, valid_from, recorded_by)
VALUES ($1, $2::address_kind, $3, $4, $5)
"""
_CASES_OF = """
SELECT c.id, c.program::text AS program, c.status::text AS status, c.org_unit_id, c.officer_id,
       o.path::text AS org_path, c.shared_with_police
  FROM cases c JOIN org_units o ON o.id = c.org_unit_id
 WHERE c.person_id = $1
 ORDER BY c.id
"""
# The matching runs in person_search_ids (migration 0011) inside the caller's scope and role
# rules; the rows it names are then read here, under the policies.
_SEARCH = """
SELECT p.id, p.full_name, p.name_pinyin, p.sex, p.birth_date, p.id_number, p.org_unit_id
  FROM persons p
 WHERE p.id IN (SELECT person_search_ids($1, $2, $3, $4, $5, $6))
 ORDER BY p.id
"""


class PersonRow(msgspec.Struct, frozen=True, kw_only=True):
    full_name: str
    sex: Sex
    birth_date: date
    id_number: str | None
    aliases: list[str]
    phones: list[Phone]
    contacts: list[ContactPerson]
    org_unit_id: int


class CaseOfPerson(msgspec.Struct, frozen=True, kw_only=True):
    ref: PersonCaseRef
    location: CaseLocation


_json = msgspec.json.Encoder()


async def id_by_id_number(conn: asyncpg.Connection, id_number: str) -> int | None:
    found: int | None = await conn.fetchval(_ID_BY_ID_NUMBER, id_number)
    return found


async def ids_by_name_and_birth(conn: asyncpg.Connection, full_name: str, birth_date: date) -> list[int]:
    return [r["id"] for r in await conn.fetch(_IDS_BY_NAME_AND_BIRTH, full_name, birth_date)]


async def locate(conn: asyncpg.Connection, person_id: int) -> tuple[str, list[CaseLocation]] | None:
    record = await conn.fetchrow(_LOCATE, person_id)
    if record is None:
        return None
    return record["org_path"], msgspec.json.decode(record["cases"], type=list[CaseLocation])


async def insert(
    conn: asyncpg.Connection, row: PersonRow, *, pinyin: str, initials: str, created_by: int
) -> int:
    try:
        person_id: int = await conn.fetchval(
            _INSERT,
            row.full_name,
            pinyin,
            initials,
            row.sex.value,
            row.birth_date,
            row.id_number,
            row.aliases,
            _json.encode(row.phones).decode(),
            _json.encode(row.contacts).decode(),
            row.org_unit_id,
            created_by,
        )
    except asyncpg.UniqueViolationError as e:
        # Registered by someone else between our duplicate check and this insert.
        raise DuplicatePerson("a person with this ID number is already registered") from e
    return person_id


async def update(
    conn: asyncpg.Connection, person_id: int, row: PersonRow, *, pinyin: str, initials: str
) -> None:
    try:
        await conn.execute(
            _UPDATE,
            person_id,
            row.full_name,
            pinyin,
            initials,
            row.sex.value,
            row.birth_date,
            row.id_number,
            row.aliases,
            _json.encode(row.phones).decode(),
            _json.encode(row.contacts).decode(),
        )
    except asyncpg.UniqueViolationError as e:
        raise DuplicatePerson("another person is registered with this ID number") from e


async def get(conn: asyncpg.Connection, person_id: int) -> Person | None:
    record = await conn.fetchrow(_GET, person_id)
    if record is None:
        return None
    values = dict(record)
    values["phones"] = msgspec.json.decode(values["phones"])
    values["contacts"] = msgspec.json.decode(values["contacts"])
    return msgspec.convert(values, Person)


async def addresses(conn: asyncpg.Connection, person_id: int) -> list[Address]:
    return [msgspec.convert(dict(r), Address) for r in await conn.fetch(_ADDRESSES, person_id)]


async def current_address_start(conn: asyncpg.Connection, person_id: int, kind: str) -> date | None:
    started: date | None = await conn.fetchval(_CURRENT_ADDRESS_START, person_id, kind)
    return started


async def add_address(
    conn: asyncpg.Connection, person_id: int, address: AddressIn, *, recorded_by: int
) -> None:
    await conn.execute(_CLOSE_ADDRESS, person_id, address.kind.value, address.valid_from)
    await conn.execute(
        _INSERT_ADDRESS, person_id, address.kind.value, address.address, address.valid_from, recorded_by
    )


async def cases_of(conn: asyncpg.Connection, person_id: int) -> list[CaseOfPerson]:
    result = []
    for r in await conn.fetch(_CASES_OF, person_id):
        result.append(
            CaseOfPerson(
                ref=PersonCaseRef(
                    id=r["id"],
                    program=r["program"],
                    status=r["status"],
                    org_unit_id=r["org_unit_id"],
                    officer_id=r["officer_id"],
                ),
                location=msgspec.convert(
                    {
                        "org_unit_id": r["org_unit_id"],
                        "org_path": r["org_path"],
                        "officer_id": r["officer_id"],
                        "program": r["program"],
                        "shared_with_police": r["shared_with_police"],
                    },
                    CaseLocation,
                ),
            )
        )
    return result


async def search(
    conn: asyncpg.Connection,
    *,
    exact: str,
    contains: str,
    prefix: str,
    starts: str,
    after: int | None,
    limit: int,
) -> list[PersonSummary]:
    """People the transaction's caller may see whose name, alias, pinyin, initials or ID
    number match (the role rules come from the transaction's scope settings)."""
    records = await conn.fetch(_SEARCH, exact, contains, prefix, starts, after, limit)
    return [msgspec.convert(dict(r), PersonSummary) for r in records]
