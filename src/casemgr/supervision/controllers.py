"""HTTP routes of supervision: the contact plan, contacts on a case, and tasks."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post, put
from litestar.di import Provide
from litestar.params import FromQuery, JSONBody, QueryParameter

from casemgr.auth.principal import ALL_ROLES, CASE_READERS, CASE_RECORDERS, Role
from casemgr.cases.schemas import Program
from casemgr.db import scoped_transaction
from casemgr.supervision import service
from casemgr.supervision.schemas import (
    Contact,
    ContactIn,
    PlanRule,
    PlanRuleUpdate,
    Task,
    TaskCompletion,
    TaskKind,
    TaskPage,
    TaskState,
)
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import MAX_ID, Cursor, IdPath


class ContactPlanController(Controller):
    path = "/contact-plan"
    tags = ["supervision"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @get("/", opt=access("contact_plan.read", ALL_ROLES))
    async def get_plan(self, request: AnyRequest, ctx: Ctx) -> list[PlanRule]:
        """How often each program and band must be contacted, in days."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.plan(conn)

    @put("/", opt=access("contact_plan.update", (Role.ADMIN,)))
    async def set_rule(self, request: AnyRequest, data: JSONBody[PlanRuleUpdate], ctx: Ctx) -> list[PlanRule]:
        """Set the interval of one program and band; new due tasks follow it."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.set_plan_rule(conn, ctx, data)


class ContactController(Controller):
    path = "/cases/{case_id:int}/contacts"
    tags = ["supervision"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @post("/", opt=access("case.contact_record", CASE_RECORDERS))
    async def record_contact(
        self, request: AnyRequest, case_id: IdPath, data: JSONBody[ContactIn], ctx: Ctx
    ) -> Contact:
        """Record a home visit, office report, phone or video contact and its outcome."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.record_contact(conn, ctx, case_id, data, resources.clock.now())

    @get("/", opt=access("case.contacts_read", CASE_READERS, purpose=True))
    async def list_contacts(
        self,
        request: AnyRequest,
        case_id: IdPath,
        ctx: Ctx,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[Contact]:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.contacts(conn, ctx, case_id, limit)


class TaskController(Controller):
    path = "/tasks"
    tags = ["supervision"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @get("/", opt=access("task.list", CASE_READERS))
    async def list_tasks(
        self,
        request: AnyRequest,
        ctx: Ctx,
        status: FromQuery[TaskState] = TaskState.OPEN,
        mine: Annotated[bool, QueryParameter(description="only tasks of my own caseload")] = False,
        escalated_to_me: FromQuery[bool] = False,
        org_unit_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
        program: FromQuery[Program | None] = None,
        kind: FromQuery[TaskKind | None] = None,
        case_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID, description="only this case")] = None,
        after: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> TaskPage:
        """Due contacts, assessments, reviews and pick-ups inside the caller's scope."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.list_tasks(
                conn,
                ctx,
                state=status,
                mine=mine,
                escalated_to_me=escalated_to_me,
                org_unit_id=org_unit_id,
                after=after,
                limit=limit,
                program=program,
                kind=kind,
                case_id=case_id,
            )

    @post("/{task_id:int}/complete", status_code=200, opt=access("task.complete", CASE_RECORDERS))
    async def complete(
        self, request: AnyRequest, task_id: IdPath, data: JSONBody[TaskCompletion], ctx: Ctx
    ) -> Task:
        """Mark an assessment, review or pick-up done (due contacts close with the contact)."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.complete_task(conn, ctx, task_id, data.note, resources.clock.now())
