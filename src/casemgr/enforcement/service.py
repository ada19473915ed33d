"""Rules of enforcement. A warning is issued by the case's officer or a supervisor. A proposal
to revoke community corrections needs two sign-offs by two other people: first the head of
the case's office (a supervisor at office level), then the head of its district (a supervisor
at district level). Every step is a case event and an audit row."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from casemgr import audit
from casemgr.auth.principal import Role
from casemgr.cases import repository as cases
from casemgr.cases.access import may_read, may_write
from casemgr.cases.service import authorize_case
from casemgr.context import RequestContext
from casemgr.enforcement import repository
from casemgr.enforcement.schemas import Enforcement, EnforcementCreate, Rejection
from casemgr.errors import Conflict, Forbidden, NotFound, ValidationFailed
from casemgr.monitoring import repository as monitoring


async def _get(conn: asyncpg.Connection, enforcement_id: int) -> Enforcement:
    found = await repository.get(conn, enforcement_id)
    if found is None:
        raise Forbidden(
            "you may not see this enforcement action",
            reason="denied_by_row_policy",
            object_type="enforcement",
            object_id=enforcement_id,
        )
    return found


async def propose(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int, data: EnforcementCreate, now: datetime
) -> Enforcement:
    await authorize_case(conn, ctx, case_id, may_write, "enforce")
    if data.alert_id is not None and not await repository.confirmed_alert(conn, data.alert_id, case_id):
        raise ValidationFailed(
            "alert_id must name an alert on this case resolved as a confirmed violation", field="alert_id"
        )
    state = await monitoring.case_state(conn, case_id)
    if data.kind == "revocation_proposal" and (state is None or state[0] != "community_corrections"):
        raise ValidationFailed(
            "revocation applies to community corrections (rule: community_corrections_only)",
            rule="community_corrections_only",
        )
    status = "issued" if data.kind == "warning" else "proposed"
    enforcement_id = await repository.insert(
        conn, case_id, data.alert_id, data.kind, status, data.note, ctx.caller.account_id, now
    )
    await cases.add_event(
        conn,
        case_id,
        actor_id=ctx.caller.account_id,
        kind="warning_issued" if data.kind == "warning" else "revocation_proposed",
        note=data.note,
    )
    await audit.record(
        conn, ctx, f"enforcement.{data.kind}", object_type="enforcement", object_id=enforcement_id
    )
    return await _get(conn, enforcement_id)


async def list_for_case(conn: asyncpg.Connection, ctx: RequestContext, case_id: int) -> list[Enforcement]:
    await authorize_case(conn, ctx, case_id, may_read, "read")
    found = await repository.of_case(conn, case_id)
    await audit.record(conn, ctx, "enforcement.list", object_type="case", object_id=case_id)
    return found


async def _signer_level(
    conn: asyncpg.Connection, ctx: RequestContext, enforcement_id: int
) -> tuple[str, Enforcement]:
    case_id = await repository.case_of(conn, enforcement_id)
    if case_id is None:
        raise NotFound(f"enforcement action {enforcement_id} does not exist")
    await authorize_case(conn, ctx, case_id, may_write, "sign for")
    caller = ctx.caller
    level = await monitoring.unit_kind(conn, caller.org_unit_id)
    if caller.role is not Role.SUPERVISOR or level not in ("office", "district"):
        raise Forbidden(
            "a revocation is signed by the office head, then the district head",
            reason="signer_level",
            object_type="enforcement",
            object_id=enforcement_id,
        )
    return level, await _get(conn, enforcement_id)


async def sign(
    conn: asyncpg.Connection, ctx: RequestContext, enforcement_id: int, now: datetime
) -> Enforcement:
    level, action = await _signer_level(conn, ctx, enforcement_id)
    me = ctx.caller.account_id
    if me in (action.created_by, action.office_signed_by):
        raise ValidationFailed(
            "a proposal is signed by two people other than whoever proposed it (rule: four_eyes)",
            rule="four_eyes",
        )
    if level == "office":
        if not await repository.office_sign(conn, enforcement_id, me, now):
            raise Conflict(f"the action is {action.status}; the office head signs a proposal first")
    elif not await repository.district_sign(conn, enforcement_id, me, now):
        raise Conflict(f"the action is {action.status}; the district head signs after the office head")
    await cases.add_event(conn, action.case_id, actor_id=me, kind=f"revocation_signed_{level}")
    await audit.record(
        conn, ctx, f"enforcement.sign_{level}", object_type="enforcement", object_id=enforcement_id
    )
    return await _get(conn, enforcement_id)


async def reject(
    conn: asyncpg.Connection, ctx: RequestContext, enforcement_id: int, data: Rejection, now: datetime
) -> Enforcement:
    level, action = await _signer_level(conn, ctx, enforcement_id)
    if not await repository.reject(conn, enforcement_id, ctx.caller.account_id, now, data.note):
        raise Conflict(f"the action is {action.status}; only an open proposal can be rejected")
    await cases.add_event(
        conn, action.case_id, actor_id=ctx.caller.account_id, kind="revocation_rejected", note=data.note
    )
    await audit.record(
        conn, ctx, f"enforcement.reject_{level}", object_type="enforcement", object_id=enforcement_id
    )
    return await _get(conn, enforcement_id)
