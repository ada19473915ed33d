"""The due-task engine: creates the tasks the plans call for, marks the late ones overdue
and escalates those left overdue to the nearest supervisor.

It runs city by city, as role "system" with the city as its scope, so it reads every case
of a city and nothing of another; an advisory lock per city keeps two workers from running
the same city at once. Its statements are idempotent, so a run that dies halfway is simply
run again. Time comes from the clock it is given, so tests can move it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg
import structlog

from casemgr import audit
from casemgr.auth.principal import MfaState, Principal, Role
from casemgr.clock import Clock
from casemgr.context import RequestContext
from casemgr.db import scoped_transaction
from casemgr.handovers import repository as handovers
from casemgr.supervision import repository
from casemgr.supervision.schemas import EngineReport

log = structlog.get_logger(__name__)


def system_principal(root_id: int, root_path: str) -> Principal:
    return Principal(
        account_id=0,
        role=Role.SYSTEM,
        org_unit_id=root_id,
        scope=root_path,
        session_id="task-engine",
        mfa=MfaState.PASSED,
    )


async def run_once(pool: asyncpg.Pool, now: datetime, *, escalate_after: timedelta) -> EngineReport:
    async with pool.acquire() as conn:
        roots = await repository.roots(conn)  # type: ignore[arg-type]
    created = cancelled = overdue = escalated = alerts = 0
    for root_id, root_path in roots:
        principal = system_principal(root_id, root_path)
        async with scoped_transaction(pool, principal) as conn:
            if not await repository.try_engine_lock(conn, root_id):
                continue  # another worker is on this city right now
            cancelled += await repository.cancel_stale(conn, now)
            created += await repository.create_due_tasks(conn, now)
            overdue += await repository.mark_overdue(conn, now)
            escalated += await repository.escalate(conn, now, escalate_after)
            alerts += await handovers.raise_alerts(conn, now)
            ctx = RequestContext(request_id=f"task-engine-{root_id}", principal=None)
            await audit.record(
                conn, ctx, "tasks.engine_run", object_type="org_unit", object_id=root_id, reason="scheduler"
            )
    return EngineReport(
        created=created, cancelled=cancelled, overdue=overdue, escalated=escalated, alerts=alerts
    )


async def run_forever(
    pool: asyncpg.Pool, clock: Clock, *, every: timedelta, escalate_after: timedelta
) -> None:
    """The engine's loop inside a worker; ends when cancelled at shutdown."""
    while True:
        try:
            report = await run_once(pool, clock.now(), escalate_after=escalate_after)
            log.info(
                "task_engine_run",
                created=report.created,
                cancelled=report.cancelled,
                overdue=report.overdue,
                escalated=report.escalated,
            )
        except (OSError, asyncpg.PostgresError) as e:
            log.warning("task_engine_failed", error_type=type(e).__name__)
        await asyncio.sleep(every.total_seconds())
