"""HTTP route of the statistics."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromQuery, QueryParameter

from casemgr.auth.principal import CASE_READERS
from casemgr.cases.schemas import Program
from casemgr.db import scoped_transaction
from casemgr.statistics import service
from casemgr.statistics.schemas import Statistics
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import MAX_ID


class StatisticsController(Controller):
    path = "/statistics"
    tags = ["statistics"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @get("/", opt=access("statistics.read", CASE_READERS))
    async def statistics(
        self,
        request: AnyRequest,
        ctx: Ctx,
        org_unit_id: Annotated[
            int | None, QueryParameter(ge=1, le=MAX_ID, description="default: your own unit")
        ] = None,
        program: FromQuery[Program | None] = None,
        window_days: Annotated[int, QueryParameter(ge=1, le=366, description="for contact compliance")] = 90,
    ) -> Statistics:
        """Per child unit and program: cases by status and level, on-time intake rate, contact
        compliance, overdue tasks and open alerts, each with the list behind it."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.compute(
                conn,
                ctx,
                org_unit_id=org_unit_id,
                program=program,
                window_days=window_days,
                now=resources.clock.now(),
            )
