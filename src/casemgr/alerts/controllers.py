"""HTTP routes of alerts."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromQuery, QueryParameter

from casemgr.alerts import service
from casemgr.alerts.schemas import AlertPage, AlertStatus
from casemgr.auth.principal import CASE_READERS
from casemgr.cases.schemas import Program
from casemgr.db import scoped_transaction
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import MAX_ID, Cursor


class AlertController(Controller):
    path = "/alerts"
    tags = ["alerts"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @get("/", opt=access("alert.list", CASE_READERS))
    async def list_alerts(
        self,
        request: AnyRequest,
        ctx: Ctx,
        status: FromQuery[AlertStatus | None] = None,
        kind: Annotated[str | None, QueryParameter(pattern=r"^[a-z][a-z_]{0,40}$")] = None,
        org_unit_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
        program: FromQuery[Program | None] = None,
        after: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> AlertPage:
        """Alerts inside the caller's scope: missed intakes, overdue contacts and tasks."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.list_alerts(
                conn,
                ctx,
                status=status,
                kind=kind,
                after=after,
                limit=limit,
                org_unit_id=org_unit_id,
                program=program,
            )
