"""Reading alerts inside the caller's scope. (Acknowledgement, escalation and live push come
with the officers' inbox.)"""

from __future__ import annotations

import asyncpg

from casemgr import audit
from casemgr.alerts import repository
from casemgr.alerts.schemas import AlertPage, AlertStatus
from casemgr.auth.principal import Role
from casemgr.cases.schemas import Program
from casemgr.context import RequestContext
from casemgr.pagination import cut_page


async def list_alerts(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    *,
    status: AlertStatus | None,
    kind: str | None,
    after: int | None,
    limit: int,
) -> AlertPage:
    caller = ctx.caller
    items = await repository.list_alerts(
        conn,
        path=caller.scope,
        status=status.value if status else None,
        kind=kind,
        after=after,
        limit=limit + 1,
        # Alerts about a handover with no case yet belong to the offices that take people on.
        include_unattached=caller.role in (Role.OFFICER, Role.SUPERVISOR),
        # An alert on a case is shown to whoever may read that case, as cases.access says.
        program_only=Program.SEVERE_MENTAL_ILLNESS.value if caller.role is Role.HEALTH_WORKER else None,
        shared_only=caller.role is Role.POLICE_LIAISON,
    )
    await audit.record(conn, ctx, "alert.list", object_type="alert")
    page, next_after = cut_page(items, limit, key=lambda a: a.id)
    return AlertPage(items=page, next_after=next_after)
