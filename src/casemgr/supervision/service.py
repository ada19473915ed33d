"""Rules of supervision: the contact plan, recording contacts, and working through tasks."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from casemgr import audit
from casemgr.cases import repository as cases
from casemgr.cases.access import list_filter, may_read, may_write_detail
from casemgr.cases.schemas import CaseLocation, Program
from casemgr.cases.service import authorize_case
from casemgr.context import RequestContext
from casemgr.errors import Conflict, Forbidden, NotFound, ValidationFailed
from casemgr.orgunits.service import subtree_path
from casemgr.pagination import cut_page
from casemgr.supervision import repository
from casemgr.supervision.schemas import (
    Contact,
    ContactIn,
    PlanRule,
    PlanRuleUpdate,
    Task,
    TaskKind,
    TaskPage,
    TaskState,
)

# Tasks that close by themselves when what they ask for is recorded elsewhere.
_CLOSED_BY_RECORDS = (TaskKind.CONTACT_DUE,)


async def _case(conn: asyncpg.Connection, ctx: RequestContext, case_id: int, *, write: bool) -> CaseLocation:
    # Whoever may write the case's detail records its contacts (health workers follow up
    # mental-illness cases too).
    if write:
        return await authorize_case(conn, ctx, case_id, may_write_detail, "record on")
    return await authorize_case(conn, ctx, case_id, may_read, "read")


async def plan(conn: asyncpg.Connection) -> list[PlanRule]:
    return await repository.plan(conn)


async def set_plan_rule(
    conn: asyncpg.Connection, ctx: RequestContext, rule: PlanRuleUpdate
) -> list[PlanRule]:
    # The plan holds for the whole city: only an admin at the top of the tree changes it.
    if "." in ctx.caller.scope:
        raise Forbidden(
            "the contact plan belongs to the city; a city-level admin changes it",
            reason="out_of_scope",
            object_type="contact_plan",
        )
    await repository.set_plan_rule(conn, rule.program, rule.band, rule.interval_days)
    await audit.record(
        conn, ctx, "contact_plan.update", object_type="contact_plan", object_id=f"{rule.program}:{rule.band}"
    )
    return await repository.plan(conn)


async def record_contact(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int, contact: ContactIn, now: datetime
) -> Contact:
    """Record a contact; one that took place closes the due contact and plans the next."""
    await _case(conn, ctx, case_id, write=True)
    if contact.occurred_at > now:
        raise ValidationFailed("a contact cannot be recorded before it happens", field="occurred_at")
    recorded = await repository.insert_contact(conn, case_id, contact, recorded_by=ctx.caller.account_id)
    if contact.outcome.achieved:
        await repository.complete_open(
            conn, case_id, TaskKind.CONTACT_DUE, at=now, by=ctx.caller.account_id, note=None
        )
        await repository.create_due_tasks(conn, now, case_id)
    await audit.record(conn, ctx, "case.contact_record", object_type="case", object_id=case_id)
    return recorded


async def contacts(conn: asyncpg.Connection, ctx: RequestContext, case_id: int, limit: int) -> list[Contact]:
    await _case(conn, ctx, case_id, write=False)
    found = await repository.contacts(conn, case_id, limit)
    await audit.record(conn, ctx, "case.contacts_read", object_type="case", object_id=case_id)
    return found


async def list_tasks(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    *,
    state: TaskState,
    mine: bool,
    escalated_to_me: bool,
    org_unit_id: int | None,
    after: int | None,
    limit: int,
    program: Program | None = None,
    kind: TaskKind | None = None,
    case_id: int | None = None,
) -> TaskPage:
    caller = ctx.caller
    rules = list_filter(caller, program, object_type="task")
    path = await subtree_path(conn, ctx, org_unit_id)
    items = await repository.list_tasks(
        conn,
        path=path,
        state=state.value,
        officer_id=caller.account_id if mine else None,
        escalated_to=caller.account_id if escalated_to_me else None,
        program=rules.program,
        shared_only=rules.shared_with_police_only,
        after=after,
        limit=limit + 1,
        kind=kind.value if kind else None,
        case_id=case_id,
    )
    await audit.record(conn, ctx, "task.list", object_type="task")
    page, next_after = cut_page(items, limit, key=lambda t: t.id)
    return TaskPage(items=page, next_after=next_after)


async def complete_task(
    conn: asyncpg.Connection, ctx: RequestContext, task_id: int, note: str, now: datetime
) -> Task:
    case_id = await repository.task_case_id(conn, task_id)
    if case_id is None:
        raise NotFound(f"task {task_id} does not exist")
    await _case(conn, ctx, case_id, write=True)
    found = await repository.task(conn, task_id)
    if found is None:  # the policies refused what the check allowed: deny, never leak
        raise Forbidden(
            "you may not see this task", reason="denied_by_row_policy", object_type="task", object_id=task_id
        )
    if found.kind in _CLOSED_BY_RECORDS:
        raise Conflict("a due contact closes when the contact is recorded: POST /cases/{id}/contacts")
    if not await repository.complete_task(conn, task_id, at=now, by=ctx.caller.account_id, note=note):
        raise Conflict(f"task {task_id} is not open")
    await cases.add_event(
        conn, found.case_id, actor_id=ctx.caller.account_id, kind=f"{found.kind}_done", note=note
    )
    await repository.create_due_tasks(conn, now, found.case_id)
    await audit.record(conn, ctx, "task.complete", object_type="task", object_id=task_id)
    done = await repository.task(conn, task_id)
    assert done is not None
    return done
