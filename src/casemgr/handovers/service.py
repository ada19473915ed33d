"""Rules of handover: referrals from prisons, courts and hospitals, and transfers between
offices, each accepted or rejected by the receiving office, never a silent update."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
import msgspec

from casemgr import audit
from casemgr.auth.principal import Principal, Role
from casemgr.cases import programs
from casemgr.cases import repository as cases_repository
from casemgr.cases import service as cases
from casemgr.cases.access import may_write
from casemgr.cases.schemas import CaseCreate, CaseStatus, Program
from casemgr.context import RequestContext
from casemgr.crypto import Keyring
from casemgr.errors import Conflict, Forbidden, NotFound, ValidationFailed
from casemgr.handovers import repository
from casemgr.handovers.schemas import (
    Acceptance,
    Handover,
    HandoverPage,
    HandoverStatus,
    ReferralCreate,
    Rejection,
    TransferCreate,
)
from casemgr.orgunits import repository as org_units
from casemgr.orgunits.service import unit_in_scope
from casemgr.pagination import cut_page
from casemgr.people import repository as people_repository
from casemgr.people.schemas import PersonCreate
from casemgr.people.service import check_id_number
from casemgr.supervision import repository as tasks
from casemgr.supervision.schemas import TaskKind

TRANSFER_DECISION_DAYS = 10
_HANDLERS = (Role.OFFICER, Role.SUPERVISOR)


def _aad(handover_id: int) -> bytes:
    return f"handovers.sealed_detail:{handover_id}".encode()


def may_see(caller: Principal, target_path: str, source_path: str | None) -> str | None:
    if caller.role not in _HANDLERS:
        return "role_handles_no_handover"
    if caller.sees(target_path) or (source_path is not None and caller.sees(source_path)):
        return None
    return "out_of_scope"


def may_decide(caller: Principal, target_path: str) -> str | None:
    if caller.role not in _HANDLERS:
        return "role_handles_no_handover"
    return None if caller.sees(target_path) else "out_of_scope"


async def _locate(conn: asyncpg.Connection, ctx: RequestContext, handover_id: int, *, decide: bool) -> None:
    located = await repository.locate(conn, handover_id)
    if located is None:
        raise NotFound(f"handover {handover_id} does not exist")
    target, source, _ = located
    denial = may_decide(ctx.caller, target) if decide else may_see(ctx.caller, target, source)
    if denial is not None:
        raise Forbidden(
            "you may not " + ("decide" if decide else "see") + " this handover",
            reason=denial,
            object_type="handover",
            object_id=handover_id,
        )


async def _get(conn: asyncpg.Connection, handover_id: int) -> Handover:
    found = await repository.get(conn, handover_id)
    if found is None:
        raise Forbidden(
            "you may not see this handover",
            reason="denied_by_row_policy",
            object_type="handover",
            object_id=handover_id,
        )
    return found


def _end_of(day: date) -> datetime:
    """The first instant after ``day`` (UTC): a deadline "on day D" holds all of D."""
    return datetime.combine(day + timedelta(days=1), time(0), UTC)


async def _officer_for(conn: asyncpg.Connection, ctx: RequestContext, officer_id: int | None) -> int:
    caller = ctx.caller
    if caller.role is Role.OFFICER:
        if officer_id not in (None, caller.account_id):
            raise Forbidden(
                "an officer accepts a case onto their own caseload",
                reason="not_own_caseload",
                object_type="handover",
            )
        return caller.account_id
    if officer_id is None:
        raise ValidationFailed("name the officer who takes the case on", field="officer_id")
    path = await cases_repository.officer_path(conn, officer_id)
    if path is None or not caller.sees(path):
        raise ValidationFailed(
            f"account {officer_id} is not an active officer in your scope", field="officer_id"
        )
    return officer_id


async def refer(
    conn: asyncpg.Connection, ctx: RequestContext, keyring: Keyring, data: ReferralCreate, now: datetime
) -> Handover:
    """Record a referral from a prison, court or hospital, with its intake deadline."""
    caller = ctx.caller
    target = await unit_in_scope(conn, ctx, data.target_org_unit_id, field="target_org_unit_id")
    if data.person.id_number is not None:
        try:
            check_id_number(data.person.id_number, data.person.birth_date, data.person.sex)
        except ValidationFailed as e:
            raise e.nested_in("person") from None
    if data.deadline is not None:
        deadline = data.deadline
    elif data.anchor_date is not None:
        deadline = _end_of(data.anchor_date + timedelta(days=await repository.days_after(conn, data.program)))
    else:
        raise ValidationFailed(
            "give the anchor_date the intake deadline counts from, or the deadline", field="anchor_date"
        )
    public: dict[str, Any] | None = None
    sensitive: dict[str, Any] = {}
    if data.detail is not None:
        if programs.program_of(data.detail) != data.program:
            raise ValidationFailed(
                f"this is a {data.program} referral; the detail must be one too", field="detail.program"
            )
        public, sensitive = programs.split(data.detail)
        if sensitive and not programs.cleared(caller.role, data.program):
            raise Forbidden(
                f"your role is not cleared for {', '.join(sorted(sensitive))}",
                reason="not_cleared_for_sensitive_fields",
                object_type="handover",
            )
    handover_id = await repository.insert(
        conn,
        source=data.source,
        source_name=data.source_name,
        source_org_unit_id=None,
        target_org_unit_id=target.id,
        program=data.program,
        case_id=None,
        person=msgspec.to_builtins(data.person),
        detail=public,
        anchor_date=data.anchor_date,
        deadline=deadline,
        note=data.note,
        created_by=caller.account_id,
    )
    if sensitive:
        await repository.set_sealed(
            conn, handover_id, keyring.seal(msgspec.json.encode(sensitive), _aad(handover_id))
        )
    await audit.record(conn, ctx, "handover.refer", object_type="handover", object_id=handover_id)
    return await _get(conn, handover_id)


async def transfer(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int, data: TransferCreate, now: datetime
) -> Handover:
    """Send a case to another office; it moves only when that office accepts it."""
    loc = await cases_repository.locate(conn, case_id)
    if loc is None:
        raise NotFound(f"case {case_id} does not exist")
    denial = may_write(ctx.caller, loc)
    if denial is not None:
        raise Forbidden(
            "you may not transfer this case", reason=denial, object_type="case", object_id=case_id
        )
    # The receiving office may lie anywhere in the city: the org tree holds nothing personal.
    target = await org_units.get(conn, data.target_org_unit_id)
    if target is None:
        raise ValidationFailed(
            f"org unit {data.target_org_unit_id} does not exist", field="target_org_unit_id"
        )
    if target.id == loc.org_unit_id:
        raise ValidationFailed("the case is in that unit already", field="target_org_unit_id")
    status = await cases_repository.lock_status(conn, case_id)
    if status is CaseStatus.CLOSED:
        raise Conflict("a closed case is not transferred")
    handover_id = await repository.insert(
        conn,
        source="office",
        source_name=None,
        source_org_unit_id=loc.org_unit_id,
        target_org_unit_id=target.id,
        program=loc.program,
        case_id=case_id,
        person=None,
        detail=None,
        anchor_date=None,
        deadline=data.deadline or now + timedelta(days=TRANSFER_DECISION_DAYS),
        note=data.note,
        created_by=ctx.caller.account_id,
    )
    await cases_repository.add_event(
        conn, case_id, actor_id=ctx.caller.account_id, kind="transfer_sent", note=data.note
    )
    await audit.record(conn, ctx, "handover.transfer", object_type="handover", object_id=handover_id)
    return await _get(conn, handover_id)


async def _accept_referral(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    keyring: Keyring,
    handover: Handover,
    data: Acceptance,
    now: datetime,
) -> int:
    assert handover.person is not None
    person = msgspec.convert(handover.person, PersonCreate)
    person_id = data.person_id
    # Linking to a registered person: the same ID number proves the identity, wherever the
    # person was registered before.
    if (
        person_id is not None
        and person.id_number is not None
        and await people_repository.id_by_id_number(conn, person.id_number) != person_id
    ):
        raise ValidationFailed("that person does not carry the referral's ID number", field="person_id")
    case = await cases.create(
        conn,
        ctx,
        keyring,
        CaseCreate(
            program=handover.program,
            org_unit_id=handover.target_org_unit_id,
            person_id=person_id,
            person=None if person_id is not None else person,
            officer_id=await _officer_for(conn, ctx, data.officer_id),
            status=CaseStatus.PENDING_INTAKE,
        ),
        link_registered_person=person_id is not None and person.id_number is not None,
    )
    public, sealed = await repository.stored_detail(conn, handover.id)
    if public is not None:
        sensitive = {} if sealed is None else msgspec.json.decode(keyring.open(sealed, _aad(handover.id)))
        await cases_repository.set_details(conn, case.id, public, programs.seal(keyring, case.id, sensitive))
        if handover.program is Program.RELEASED_PRISONER and public.get("must_meet"):
            # "Must meet and deliver": someone collects the person at the gate.
            await tasks.add_task(
                conn,
                case.id,
                TaskKind.PICKUP,
                datetime.combine(date.fromisoformat(public["release_date"]), time(0), UTC),
            )
    await tasks.add_task(conn, case.id, TaskKind.INTAKE_DUE, handover.deadline)
    return case.id


async def accept(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    keyring: Keyring,
    handover_id: int,
    data: Acceptance,
    now: datetime,
) -> Handover:
    await _locate(conn, ctx, handover_id, decide=True)
    handover = await _get(conn, handover_id)
    if handover.status is not HandoverStatus.PENDING:
        raise Conflict(f"the handover was {handover.status} already")
    intake_case_id: int | None = None
    if handover.case_id is None:
        intake_case_id = await _accept_referral(conn, ctx, keyring, handover, data, now)
    else:
        officer_id = await _officer_for(conn, ctx, data.officer_id)
        if await repository.move_case(conn, handover_id, officer_id) is None:
            raise Conflict("the transfer is no longer pending")
        await cases_repository.add_event(
            conn, handover.case_id, actor_id=ctx.caller.account_id, kind="transfer_accepted", note=data.note
        )
    if not await repository.decide(
        conn,
        handover_id,
        status="accepted",
        by=ctx.caller.account_id,
        at=now,
        note=data.note,
        intake_case_id=intake_case_id,
    ):
        raise Conflict("the handover was decided meanwhile")
    await audit.record(conn, ctx, "handover.accept", object_type="handover", object_id=handover_id)
    return await _get(conn, handover_id)


async def reject(
    conn: asyncpg.Connection, ctx: RequestContext, handover_id: int, data: Rejection, now: datetime
) -> Handover:
    await _locate(conn, ctx, handover_id, decide=True)
    if not await repository.decide(
        conn, handover_id, status="rejected", by=ctx.caller.account_id, at=now, note=data.note
    ):
        raise Conflict("the handover is no longer pending")
    await audit.record(conn, ctx, "handover.reject", object_type="handover", object_id=handover_id)
    return await _get(conn, handover_id)


async def read(conn: asyncpg.Connection, ctx: RequestContext, handover_id: int) -> Handover:
    await _locate(conn, ctx, handover_id, decide=False)
    found = await _get(conn, handover_id)
    await audit.record(conn, ctx, "handover.read", object_type="handover", object_id=handover_id)
    return found


async def list_handovers(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    *,
    incoming: bool,
    status: HandoverStatus | None,
    after: int | None,
    limit: int,
) -> HandoverPage:
    items = await repository.list_handovers(
        conn,
        path=ctx.caller.scope,
        incoming=incoming,
        status=status.value if status else None,
        after=after,
        limit=limit + 1,
    )
    await audit.record(conn, ctx, "handover.list", object_type="handover")
    page, next_after = cut_page(items, limit, key=lambda h: h.id)
    return HandoverPage(items=page, next_after=next_after)
