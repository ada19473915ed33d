"""Rules of the person registry: who may see and change a person, identity checks, and
duplicate detection at registration."""

from __future__ import annotations

from datetime import date
from typing import TypeVar

import asyncpg
import msgspec

from casemgr import audit
from casemgr.auth.principal import Principal, Role
from casemgr.cases.access import may_read
from casemgr.cases.schemas import CaseLocation
from casemgr.context import RequestContext
from casemgr.errors import DuplicatePerson, Forbidden, NotFound, PossibleDuplicate, ValidationFailed
from casemgr.orgunits.service import unit_in_scope
from casemgr.pagination import cut_page
from casemgr.people import id_number as gb11643
from casemgr.people import repository
from casemgr.people.names import romanise, search_key
from casemgr.people.repository import PersonRow
from casemgr.people.schemas import AddressIn, Person, PersonCreate, PersonPage, PersonUpdate, Sex

T = TypeVar("T")
_REGISTRARS = (Role.OFFICER, Role.SUPERVISOR)


def may_read_person(caller: Principal, org_path: str, cases: list[CaseLocation]) -> str | None:
    """None if the caller may read the person, else the reason of the denial.

    Officers and supervisors read the people registered inside their scope; anyone reads the
    people who hold a case they may read.
    """
    if caller.role in _REGISTRARS and caller.sees(org_path):
        return None
    if any(may_read(caller, case) is None for case in cases):
        return None
    if not caller.sees(org_path) and not any(caller.sees(case.org_path) for case in cases):
        return "out_of_scope"
    return "no_readable_case"


def may_write_person(caller: Principal, org_path: str) -> str | None:
    if caller.role not in _REGISTRARS:
        return "role_writes_no_person"
    return None if caller.sees(org_path) else "out_of_scope"


def check_id_number(id_number: str, birth_date: date, sex: Sex) -> None:
    """GB 11643: the check character, and the birth date and sex the number encodes."""
    if not gb11643.is_valid(id_number):
        raise ValidationFailed("the ID number's check character is wrong (GB 11643)", field="id_number")
    if gb11643.birth_date_part(id_number) != birth_date.strftime("%Y%m%d"):
        raise ValidationFailed("the ID number does not carry this birth date", field="id_number")
    if gb11643.is_male(id_number) != (sex is Sex.MALE):
        raise ValidationFailed("the ID number does not carry this sex", field="id_number")


async def _locate(conn: asyncpg.Connection, ctx: RequestContext, person_id: int, *, write: bool) -> None:
    located = await repository.locate(conn, person_id)
    if located is None:
        raise NotFound(f"person {person_id} does not exist")
    org_path, cases = located
    denial = may_write_person(ctx.caller, org_path) if write else may_read_person(ctx.caller, org_path, cases)
    if denial is not None:
        raise Forbidden(
            "you may not " + ("change" if write else "read") + " this person",
            reason=denial,
            object_type="person",
            object_id=person_id,
        )


async def _duplicate_checks(conn: asyncpg.Connection, data: PersonCreate) -> list[int]:
    """Refuse a known ID number; return same-name-and-birth candidates (maybe empty)."""
    if data.id_number is not None:
        existing = await repository.id_by_id_number(conn, data.id_number)
        if existing is not None:
            raise DuplicatePerson(
                f"this ID number is registered already, as person {existing}",
                extra={"existing_person_id": existing},
            )
    return await repository.ids_by_name_and_birth(conn, data.full_name, data.birth_date)


async def _full(conn: asyncpg.Connection, ctx: RequestContext, person_id: int) -> Person:
    person = await repository.get(conn, person_id)
    if person is None:  # the policies refused what the check allowed: deny, never leak
        raise Forbidden(
            "you may not read this person",
            reason="denied_by_row_policy",
            object_type="person",
            object_id=person_id,
        )
    readable = [
        c.ref for c in await repository.cases_of(conn, person_id) if may_read(ctx.caller, c.location) is None
    ]
    return msgspec.structs.replace(
        person, addresses=await repository.addresses(conn, person_id), cases=readable
    )


async def register(conn: asyncpg.Connection, ctx: RequestContext, data: PersonCreate) -> Person:
    caller = ctx.caller
    if caller.role not in _REGISTRARS:
        raise Forbidden(
            "only officers and supervisors register people",
            reason="role_writes_no_person",
            object_type="person",
        )
    if data.id_number is not None:
        check_id_number(data.id_number, data.birth_date, data.sex)
    kinds = [a.kind for a in data.addresses]
    if len(set(kinds)) != len(kinds):
        raise ValidationFailed("give at most one current address of each kind", field="addresses")
    unit = await unit_in_scope(conn, ctx, data.org_unit_id or caller.org_unit_id, field="org_unit_id")
    candidates = await _duplicate_checks(conn, data)
    if candidates and not data.confirm_possible_duplicate:
        raise PossibleDuplicate(
            "someone with this name and birth date is registered already; check the candidates, "
            "then send confirm_possible_duplicate: true to register a different person",
            extra={"candidate_person_ids": candidates},
        )
    pinyin, initials = romanise(data.full_name)
    row = PersonRow(
        full_name=data.full_name,
        sex=data.sex,
        birth_date=data.birth_date,
        id_number=data.id_number,
        aliases=data.aliases,
        phones=data.phones,
        contacts=data.contacts,
        org_unit_id=unit.id,
    )
    person_id = await repository.insert(
        conn, row, pinyin=pinyin, initials=initials, created_by=caller.account_id
    )
    for address in data.addresses:
        await repository.add_address(conn, person_id, address, recorded_by=caller.account_id)
    await audit.record(
        conn,
        ctx,
        "person.create",
        object_type="person",
        object_id=person_id,
        reason="possible_duplicate_confirmed" if candidates else None,
    )
    return await _full(conn, ctx, person_id)


async def check_readable(conn: asyncpg.Connection, ctx: RequestContext, person_id: int) -> None:
    """Refuse (404 or audited 403) a person the caller may not read."""
    await _locate(conn, ctx, person_id, write=False)


async def read(conn: asyncpg.Connection, ctx: RequestContext, person_id: int) -> Person:
    await _locate(conn, ctx, person_id, write=False)
    person = await _full(conn, ctx, person_id)
    await audit.record(conn, ctx, "person.read", object_type="person", object_id=person_id)
    return person


def _pick(new: T | msgspec.UnsetType, old: T) -> T:
    return old if isinstance(new, msgspec.UnsetType) else new


async def update(conn: asyncpg.Connection, ctx: RequestContext, person_id: int, data: PersonUpdate) -> Person:
    await _locate(conn, ctx, person_id, write=True)
    current = await repository.get(conn, person_id)
    if current is None:
        raise Forbidden(
            "you may not change this person",
            reason="denied_by_row_policy",
            object_type="person",
            object_id=person_id,
        )
    row = PersonRow(
        full_name=_pick(data.full_name, current.full_name),
        sex=_pick(data.sex, current.sex),
        birth_date=_pick(data.birth_date, current.birth_date),
        id_number=_pick(data.id_number, current.id_number),
        aliases=_pick(data.aliases, current.aliases),
        phones=_pick(data.phones, current.phones),
        contacts=_pick(data.contacts, current.contacts),
        org_unit_id=current.org_unit_id,
    )
    if row.id_number is not None:
        check_id_number(row.id_number, row.birth_date, row.sex)
    pinyin, initials = romanise(row.full_name)
    await repository.update(conn, person_id, row, pinyin=pinyin, initials=initials)
    await audit.record(conn, ctx, "person.update", object_type="person", object_id=person_id)
    return await _full(conn, ctx, person_id)


async def add_address(
    conn: asyncpg.Connection, ctx: RequestContext, person_id: int, address: AddressIn
) -> Person:
    """Record a new current address; the one it replaces stays, as history."""
    await _locate(conn, ctx, person_id, write=True)
    started = await repository.current_address_start(conn, person_id, address.kind.value)
    if started is not None and address.valid_from <= started:
        raise ValidationFailed(
            f"the current {address.kind} address starts on {started}; a new one must start later",
            field="valid_from",
        )
    await repository.add_address(conn, person_id, address, recorded_by=ctx.caller.account_id)
    await audit.record(conn, ctx, "person.address_add", object_type="person", object_id=person_id)
    return await _full(conn, ctx, person_id)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(
    conn: asyncpg.Connection, ctx: RequestContext, query: str, *, after: int | None, limit: int
) -> PersonPage:
    """People the caller may see whose name, alias, pinyin, initials or ID number match."""
    text = query.strip()
    key = search_key(text)
    # The role rules (registered in scope, or a case the role may read) are applied inside
    # the search from the transaction's scope, exactly as the policies apply them.
    items = await repository.search(
        conn,
        exact=text.upper() if len(text) == 18 else text,
        # A part of a name is looked for inside names from three characters on (the trigram
        # index needs three); shorter texts match names that start with them.
        contains=_escape_like(text) if len(text) >= 3 else "",
        prefix=_escape_like(key) if len(key) >= 2 else "",
        starts=_escape_like(text),
        after=after,
        limit=limit + 1,
    )
    await audit.record(conn, ctx, "person.search", object_type="person")
    page, next_after = cut_page(items, limit, key=lambda p: p.id)
    return PersonPage(items=page, next_after=next_after)
