"""Rules of cases: object-level access, opening, the program detail with its sealed
fields, supervision level, lifecycle transitions and the case's events.

Each operation first locates the case (where it sits, who holds it, what it is: nothing
personal) and decides with cases.access; only then does it read the case, through the
row-level policies, which decide again on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from casemgr import audit
from casemgr.auth.principal import Principal, Role
from casemgr.cases import lifecycle, programs, repository
from casemgr.cases.access import list_filter, may_read, may_write, may_write_detail
from casemgr.cases.programs import ProgramDetail
from casemgr.cases.repository import StoredCase
from casemgr.cases.schemas import (
    Case,
    CaseCreate,
    CaseEvent,
    CaseLocation,
    CasePage,
    CasePerson,
    CaseStatus,
    CaseUpdate,
    Program,
    SupervisionLevel,
    Transition,
)
from casemgr.context import RequestContext
from casemgr.crypto import Keyring
from casemgr.errors import Forbidden, NotFound, ValidationFailed
from casemgr.orgunits.service import subtree_path, unit_in_scope
from casemgr.pagination import cut_page
from casemgr.people import service as people
from casemgr.supervision import repository as tasks
from casemgr.supervision.schemas import TaskKind

_OPENING_STATES = (CaseStatus.REFERRED, CaseStatus.PENDING_INTAKE, CaseStatus.ACTIVE)


async def authorize_case(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    case_id: int,
    rule: Callable[[Principal, CaseLocation], str | None],
    verb: str,
) -> CaseLocation:
    """The case's location, if the rule lets the caller at it; else 404, or an audited 403."""
    loc = await repository.locate(conn, case_id)
    if loc is None:
        raise NotFound(f"case {case_id} does not exist")
    denial = rule(ctx.caller, loc)
    if denial is not None:
        raise Forbidden(f"you may not {verb} this case", reason=denial, object_type="case", object_id=case_id)
    return loc


async def _check_officer(conn: asyncpg.Connection, ctx: RequestContext, officer_id: int) -> None:
    path = await repository.officer_path(conn, officer_id)
    if path is None or not ctx.caller.sees(path):
        raise ValidationFailed(
            f"account {officer_id} is not an active officer in your scope", field="officer_id"
        )


def _present(stored: StoredCase, caller: Principal, keyring: Keyring) -> Case:
    """The case as this caller may see it: sensitive fields only for the cleared."""
    detail: ProgramDetail | None = None
    if stored.details is not None:
        sensitive = None
        if programs.cleared(caller.role, stored.program):
            sensitive = programs.unseal(keyring, stored.id, stored.sealed_details)
        detail = programs.assemble(stored.details, sensitive)
    return Case(
        id=stored.id,
        program=stored.program,
        status=stored.status,
        supervision_level=stored.supervision_level,
        org_unit_id=stored.org_unit_id,
        officer_id=stored.officer_id,
        shared_with_police=stored.shared_with_police,
        closure_reason=stored.closure_reason,
        activated_at=stored.activated_at,
        closed_at=stored.closed_at,
        created_at=stored.created_at,
        person=msgspec.convert(stored.person, CasePerson),
        detail=detail,
    )


async def _fetch(conn: asyncpg.Connection, ctx: RequestContext, case_id: int, keyring: Keyring) -> Case:
    stored = await repository.get(conn, case_id)
    if stored is None:  # the policies refused what the check allowed: deny, never leak
        raise Forbidden(
            "you may not read this case", reason="denied_by_row_policy", object_type="case", object_id=case_id
        )
    return _present(stored, ctx.caller, keyring)


async def _store_detail(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    keyring: Keyring,
    case_id: int,
    program: Program,
    detail: ProgramDetail,
) -> None:
    """Write a detail: public fields replaced, sensitive fields the caller sent replaced,
    sensitive fields they left out kept. Sending fields one is not cleared for is refused."""
    if programs.program_of(detail) != program:
        raise ValidationFailed(
            f"this is a {program} case; the detail must be one too", field="detail.program"
        )
    public, sensitive = programs.split(detail)
    if sensitive and not programs.cleared(ctx.caller.role, program):
        raise Forbidden(
            f"your role is not cleared for {', '.join(sorted(sensitive))}",
            reason="not_cleared_for_sensitive_fields",
            object_type="case",
            object_id=case_id,
        )
    _, sealed_before = await repository.stored_details(conn, case_id)
    kept: dict[str, Any] = {}
    if sealed_before is not None and programs.cleared(ctx.caller.role, program):
        kept = programs.unseal(keyring, case_id, sealed_before)
        sealed = programs.seal(keyring, case_id, {**kept, **sensitive})
    elif sealed_before is not None:
        sealed = sealed_before  # untouched: the caller could not have seen or sent them
    else:
        sealed = programs.seal(keyring, case_id, sensitive)
    await repository.set_details(conn, case_id, public, sealed)


async def read(conn: asyncpg.Connection, ctx: RequestContext, keyring: Keyring, case_id: int) -> Case:
    loc = await authorize_case(conn, ctx, case_id, may_read, "read")
    case = await _fetch(conn, ctx, case_id, keyring)
    sensitive = programs.cleared(ctx.caller.role, loc.program) and bool(
        programs.sensitive_fields(loc.program)
    )
    await audit.record(
        conn,
        ctx,
        "case.read",
        object_type="case",
        object_id=case_id,
        reason="with_sensitive_fields" if sensitive else None,
    )
    return case


async def list_cases(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    *,
    program: Program | None,
    mine: bool,
    after: int | None,
    limit: int,
    status: CaseStatus | None = None,
    level: SupervisionLevel | None = None,
    org_unit_id: int | None = None,
    overdue: bool = False,
    action: str = "case.list",
    person_ids: list[int] | None = None,
) -> CasePage:
    caller = ctx.caller
    # The same rules as may_read, as filters: the row policies would drop the rest anyway,
    # but the application does not lean on them.
    rules = list_filter(caller, program, object_type="case")
    path = await subtree_path(conn, ctx, org_unit_id)
    items = await repository.list_under(
        conn,
        path=path,
        program=rules.program,
        officer_id=caller.account_id if mine else None,
        after=after,
        limit=limit + 1,
        shared_with_police_only=rules.shared_with_police_only,
        status=status,
        level=level,
        overdue_only=overdue,
        person_ids=person_ids,
    )
    await audit.record(conn, ctx, action, object_type="case")
    page, next_after = cut_page(items, limit, key=lambda c: c.id)
    return CasePage(items=page, next_after=next_after)


async def create(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    keyring: Keyring,
    data: CaseCreate,
    *,
    link_registered_person: bool = False,
) -> Case:
    """Open a case. ``link_registered_person``: the caller proved the person's identity
    otherwise (a referral carrying their ID number), so the person may lie outside scope."""
    caller = ctx.caller
    if (data.person_id is None) == (data.person is None):
        raise ValidationFailed(
            "give either person_id (a registered person) or person (to register)", field="person_id"
        )
    if data.status not in _OPENING_STATES:
        raise ValidationFailed("a case opens as referred, pending_intake or active", field="status")
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
    if data.person is not None:
        person = msgspec.structs.replace(data.person, org_unit_id=data.person.org_unit_id or unit.id)
        try:
            person_id = (await people.register(conn, ctx, person)).id
        except ValidationFailed as e:
            raise e.nested_in("person") from None
    else:
        assert data.person_id is not None
        person_id = data.person_id
        if not link_registered_person:
            await people.check_readable(conn, ctx, person_id)
    case_id = await repository.insert_case(
        conn,
        person_id=person_id,
        program=data.program,
        status=data.status,
        org_unit_id=unit.id,
        officer_id=officer_id,
        level=data.supervision_level,
    )
    if data.detail is not None:
        await _store_detail(conn, ctx, keyring, case_id, data.program, data.detail)
    await repository.add_event(
        conn, case_id, actor_id=caller.account_id, kind="opened", to_status=data.status
    )
    await audit.record(conn, ctx, "case.create", object_type="case", object_id=case_id)
    return await _fetch(conn, ctx, case_id, keyring)


async def update(
    conn: asyncpg.Connection, ctx: RequestContext, keyring: Keyring, case_id: int, data: CaseUpdate
) -> Case:
    await authorize_case(conn, ctx, case_id, may_write, "change")
    caller = ctx.caller
    note = None if isinstance(data.note, msgspec.UnsetType) else data.note
    officer_id = None if isinstance(data.officer_id, msgspec.UnsetType) else data.officer_id
    if officer_id is not None:
        if caller.role is not Role.SUPERVISOR:
            raise Forbidden(
                "only a supervisor reassigns a case",
                reason="reassign_needs_supervisor",
                object_type="case",
                object_id=case_id,
            )
        await _check_officer(conn, ctx, officer_id)
        await repository.add_event(
            conn, case_id, actor_id=caller.account_id, kind="officer_changed", note=note
        )
    level = None if isinstance(data.supervision_level, msgspec.UnsetType) else data.supervision_level
    if level is not None:
        await repository.add_event(
            conn, case_id, actor_id=caller.account_id, kind=f"level_{level.value}", note=note
        )
    shared = None if isinstance(data.shared_with_police, msgspec.UnsetType) else data.shared_with_police
    if shared is not None:
        await repository.add_event(
            conn,
            case_id,
            actor_id=caller.account_id,
            kind="shared_with_police" if shared else "unshared_with_police",
            note=note,
        )
    await repository.update(conn, case_id, officer_id=officer_id, shared_with_police=shared, level=level)
    await audit.record(conn, ctx, "case.update", object_type="case", object_id=case_id)
    return await _fetch(conn, ctx, case_id, keyring)


async def put_detail(
    conn: asyncpg.Connection, ctx: RequestContext, keyring: Keyring, case_id: int, detail: ProgramDetail
) -> Case:
    loc = await authorize_case(conn, ctx, case_id, may_write_detail, "change")
    await _store_detail(conn, ctx, keyring, case_id, loc.program, detail)
    await repository.add_event(conn, case_id, actor_id=ctx.caller.account_id, kind="detail_updated")
    await audit.record(conn, ctx, "case.detail_update", object_type="case", object_id=case_id)
    return await _fetch(conn, ctx, case_id, keyring)


async def transition(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    keyring: Keyring,
    case_id: int,
    move: Transition,
    now: datetime,
) -> Case:
    """Move a case along its lifecycle; the move and its reason become a case event."""
    await authorize_case(conn, ctx, case_id, may_write, "change")
    current = await repository.lock_status(conn, case_id)
    if current is None:
        raise Forbidden(
            "you may not change this case",
            reason="denied_by_row_policy",
            object_type="case",
            object_id=case_id,
        )
    lifecycle.check_transition(current, move.to, move.closure_reason)
    await repository.transition(conn, case_id, move.to, move.closure_reason)
    await repository.add_event(
        conn,
        case_id,
        actor_id=ctx.caller.account_id,
        kind="status_changed",
        from_status=current,
        to_status=move.to,
        note=move.note,
    )
    if move.to is CaseStatus.ACTIVE:
        # Registered and taken on: the intake the handover asked for is done.
        await tasks.complete_open(
            conn, case_id, TaskKind.INTAKE_DUE, at=now, by=ctx.caller.account_id, note=move.note
        )
    await audit.record(conn, ctx, "case.transition", object_type="case", object_id=case_id)
    return await _fetch(conn, ctx, case_id, keyring)


async def events(conn: asyncpg.Connection, ctx: RequestContext, case_id: int) -> list[CaseEvent]:
    await authorize_case(conn, ctx, case_id, may_read, "read")
    found = await repository.events(conn, case_id)
    await audit.record(conn, ctx, "case.events_read", object_type="case", object_id=case_id)
    return found
