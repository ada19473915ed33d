"""HTTP routes of cases: caseload list, create, read (with a stated purpose), update, export."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from litestar import Controller, Response, get, patch, post, put
from litestar.di import Provide
from litestar.params import FromQuery, JSONBody, QueryParameter

from casemgr.auth.principal import CASE_READERS, CASE_WRITERS, Role
from casemgr.cases import service
from casemgr.cases.programs import ProgramDetail
from casemgr.cases.schemas import (
    Case,
    CaseCreate,
    CaseEvent,
    CasePage,
    CaseStatus,
    CaseUpdate,
    Program,
    SupervisionLevel,
    Transition,
)
from casemgr.db import scoped_transaction
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import MAX_ID, Cursor, IdPath

EXPORT_LIMIT = 10_000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (CSV injection)."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


DETAIL_WRITERS = CASE_WRITERS | {Role.HEALTH_WORKER}


class CaseController(Controller):
    path = "/cases"
    tags = ["cases"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @get("/", opt=access("case.list", CASE_READERS))
    async def list_cases(
        self,
        request: AnyRequest,
        ctx: Ctx,
        program: FromQuery[Program | None] = None,
        status: FromQuery[CaseStatus | None] = None,
        level: FromQuery[SupervisionLevel | None] = None,
        org_unit_id: Annotated[
            int | None, QueryParameter(ge=1, le=MAX_ID, description="only this subtree")
        ] = None,
        mine: Annotated[bool, QueryParameter(description="only my own caseload")] = False,
        overdue: Annotated[bool, QueryParameter(description="only cases with an overdue task")] = False,
        after: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> CasePage:
        """The caseload the caller may read: an officer's office, a supervisor's subtree."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.list_cases(
                conn,
                ctx,
                program=program,
                mine=mine,
                after=after,
                limit=limit,
                status=status,
                level=level,
                org_unit_id=org_unit_id,
                overdue=overdue,
            )

    @get("/export", opt=access("case.export", CASE_READERS, purpose=True), media_type="text/csv")
    async def export_cases(
        self, request: AnyRequest, ctx: Ctx, program: FromQuery[Program | None] = None
    ) -> Response[str]:
        """The readable caseload as CSV; needs a stated purpose and is audited as an export."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            page = await service.list_cases(
                conn, ctx, program=program, mine=False, after=None, limit=EXPORT_LIMIT, action="case.export"
            )
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                "case_id",
                "program",
                "status",
                "supervision_level",
                "org_unit_id",
                "officer_id",
                "person_id",
                "full_name",
            ]
        )
        for item in page.items:
            writer.writerow(
                [
                    item.id,
                    item.program,
                    item.status,
                    item.supervision_level,
                    item.org_unit_id,
                    item.officer_id,
                    item.person_id,
                    _cell(item.full_name),
                ]
            )
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="caseload.csv"'},
        )

    @post("/", opt=access("case.create", CASE_WRITERS))
    async def create_case(self, request: AnyRequest, data: JSONBody[CaseCreate], ctx: Ctx) -> Case:
        """Open a case, for a registered person or registering them with it."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.create(conn, ctx, resources.keyring, data)

    @get("/{case_id:int}", opt=access("case.read", CASE_READERS, purpose=True))
    async def get_case(self, request: AnyRequest, case_id: IdPath, ctx: Ctx) -> Case:
        """One case file; needs a stated purpose (X-Purpose), recorded in the audit."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.read(conn, ctx, resources.keyring, case_id)

    @patch("/{case_id:int}", opt=access("case.update", CASE_WRITERS))
    async def update_case(
        self, request: AnyRequest, case_id: IdPath, data: JSONBody[CaseUpdate], ctx: Ctx
    ) -> Case:
        """Reassign (supervisors), change the supervision level, share with police."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.update(conn, ctx, resources.keyring, case_id, data)

    @put("/{case_id:int}/detail", opt=access("case.detail_update", DETAIL_WRITERS))
    async def put_detail(
        self, request: AnyRequest, case_id: IdPath, data: JSONBody[ProgramDetail], ctx: Ctx
    ) -> Case:
        """Replace the program detail. Sensitive fields left out keep their stored values;
        sending one your role is not cleared for is refused."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.put_detail(conn, ctx, resources.keyring, case_id, data)

    @post("/{case_id:int}/transitions", status_code=200, opt=access("case.transition", CASE_WRITERS))
    async def transition(
        self, request: AnyRequest, case_id: IdPath, data: JSONBody[Transition], ctx: Ctx
    ) -> Case:
        """Move the case along its lifecycle; a move it does not allow is a 409."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.transition(
                conn, ctx, resources.keyring, case_id, data, resources.clock.now()
            )

    @get("/{case_id:int}/events", opt=access("case.events_read", CASE_READERS, purpose=True))
    async def list_events(self, request: AnyRequest, case_id: IdPath, ctx: Ctx) -> list[CaseEvent]:
        """The case's history: who did what, when and why."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.events(conn, ctx, case_id)
