"""Rules of case access (the object-level layer) and of the case operations built so far.

Each operation first locates the case (where it sits, who holds it, what it is: nothing
personal) and decides with ``_check_read`` / ``_check_write``; only then does it read the
case, through the row-level policies, which decide again on their own.
"""

from __future__ import annotations

import asyncpg
import msgspec

from casemgr import audit
from casemgr.auth.principal import Role
from casemgr.cases import repository
from casemgr.cases.access import may_read, may_write
from casemgr.cases.schemas import Case, CaseCreate, CaseLocation, CasePage, CaseUpdate, Program
from casemgr.context import RequestContext
from casemgr.errors import Forbidden, NotFound, ValidationFailed
from casemgr.orgunits.service import unit_in_scope
from casemgr.pagination import cut_page


async def _locate(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int, *, write: bool
) -> CaseLocation:
    loc = await repository.locate(conn, case_id)
    if loc is None:
        raise NotFound(f"case {case_id} does not exist")
    denial = may_write(ctx.caller, loc) if write else may_read(ctx.caller, loc)
    if denial is not None:
        raise Forbidden(
            "you may not " + ("change" if write else "read") + " this case",
            reason=denial,
            object_type="case",
            object_id=case_id,
        )
    return loc


async def _check_officer(conn: asyncpg.Connection, ctx: RequestContext, officer_id: int) -> None:
    path = await repository.officer_path(conn, officer_id)
    if path is None or not ctx.caller.sees(path):
        raise ValidationFailed(
            f"account {officer_id} is not an active officer in your scope", field="officer_id"
        )


async def read(conn: asyncpg.Connection, ctx: RequestContext, case_id: int) -> Case:
    await _locate(conn, ctx, case_id, write=False)
    case = await repository.get(conn, case_id)
    if case is None:  # the policies refused what the check allowed: deny, never leak
        raise Forbidden(
            "you may not read this case", reason="denied_by_row_policy", object_type="case", object_id=case_id
        )
    await audit.record(conn, ctx, "case.read", object_type="case", object_id=case_id)
    return case


async def list_cases(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    *,
    program: Program | None,
    mine: bool,
    after: int | None,
    limit: int,
    action: str = "case.list",
) -> CasePage:
    caller = ctx.caller
    # The same rules as may_read, as filters: the row policies would drop the rest anyway,
    # but the application does not lean on them.
    if caller.role is Role.HEALTH_WORKER:
        if program not in (None, Program.SEVERE_MENTAL_ILLNESS):
            raise Forbidden(
                "health workers read severe-mental-illness cases only",
                reason="program_not_cleared",
                object_type="case",
            )
        program = Program.SEVERE_MENTAL_ILLNESS
    items = await repository.list_under(
        conn,
        path=caller.scope,
        program=program,
        officer_id=caller.account_id if mine else None,
        after=after,
        limit=limit + 1,
        shared_with_police_only=caller.role is Role.POLICE_LIAISON,
    )
    await audit.record(conn, ctx, action, object_type="case")
    page, next_after = cut_page(items, limit, key=lambda c: c.id)
    return CasePage(items=page, next_after=next_after)


async def create(conn: asyncpg.Connection, ctx: RequestContext, data: CaseCreate) -> Case:
    caller = ctx.caller
    unit = await unit_in_scope(conn, ctx, data.org_unit_id, field="org_unit_id")
    if caller.role is Role.OFFICER:
        if data.officer_id not in (None, caller.account_id):
            raise Forbidden(
                "an officer opens cases on their own caseload", reason="not_own_caseload", object_type="case"
            )
        officer_id = caller.account_id
    else:
        if data.officer_id is None:
            raise ValidationFailed("name the responsible officer", field="officer_id")
        await _check_officer(conn, ctx, data.officer_id)
        officer_id = data.officer_id
    person_id = await repository.insert_person(
        conn, data.person, org_unit_id=unit.id, created_by=caller.account_id
    )
    case_id = await repository.insert_case(
        conn, person_id=person_id, program=data.program, org_unit_id=unit.id, officer_id=officer_id
    )
    await audit.record(conn, ctx, "person.create", object_type="person", object_id=person_id)
    await audit.record(conn, ctx, "case.create", object_type="case", object_id=case_id)
    case = await repository.get(conn, case_id)
    assert case is not None
    return case


async def update(conn: asyncpg.Connection, ctx: RequestContext, case_id: int, data: CaseUpdate) -> Case:
    await _locate(conn, ctx, case_id, write=True)
    officer_id = None if isinstance(data.officer_id, msgspec.UnsetType) else data.officer_id
    if officer_id is not None:
        if ctx.caller.role is not Role.SUPERVISOR:
            raise Forbidden(
                "only a supervisor reassigns a case",
                reason="reassign_needs_supervisor",
                object_type="case",
                object_id=case_id,
            )
        await _check_officer(conn, ctx, officer_id)
    shared = None if isinstance(data.shared_with_police, msgspec.UnsetType) else data.shared_with_police
    await repository.update(conn, case_id, officer_id=officer_id, shared_with_police=shared)
    await audit.record(conn, ctx, "case.update", object_type="case", object_id=case_id)
    case = await repository.get(conn, case_id)
    assert case is not None
    return case
