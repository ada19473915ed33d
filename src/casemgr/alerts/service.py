"""Reading alerts inside the caller's scope. (Acknowledgement, escalation and live push come
with the officers' inbox.)"""

from __future__ import annotations

import asyncpg

from casemgr import audit
from casemgr.alerts import repository
from casemgr.alerts.schemas import AlertPage, AlertStatus
from casemgr.auth.principal import Role
from casemgr.cases.access import list_filter
from casemgr.cases.schemas import Program
from casemgr.context import RequestContext
from casemgr.orgunits.service import subtree_path
from casemgr.pagination import cut_page


async def list_alerts(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    *,
    status: AlertStatus | None,
    kind: str | None,
    after: int | None,
    limit: int,
    org_unit_id: int | None = None,
    program: Program | None = None,
) -> AlertPage:
    caller = ctx.caller
    # An alert on a case is shown to whoever may read that case, as cases.access says.
    rules = list_filter(caller, program, object_type="alert")
    path = await subtree_path(conn, ctx, org_unit_id)
    items = await repository.list_alerts(
        conn,
        path=path,
        status=status.value if status else None,
        kind=kind,
        after=after,
        limit=limit + 1,
        # Alerts about a referral with no case yet belong to the offices that take people on.
        include_unattached=caller.role in (Role.OFFICER, Role.SUPERVISOR),
        program=rules.program.value if rules.program else None,
        shared_only=rules.shared_with_police_only,
    )
    await audit.record(conn, ctx, "alert.list", object_type="alert")
    page, next_after = cut_page(items, limit, key=lambda a: a.id)
    return AlertPage(items=page, next_after=next_after)
