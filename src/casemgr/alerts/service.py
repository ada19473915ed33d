"""The officers' inbox: alerts inside the caller's scope, their lifecycle and escalation.

An alert on a case is shown to, and handled by, whoever may read that case (cases.access);
an alert without a case (a referral not yet taken on) by the officers and supervisors over
its unit. new -> acknowledged -> resolved, or new -> resolved; resolving names an outcome and
says what was found. An alert nobody acknowledges within its severity's limit goes to the
office's supervisors, then one level up at a time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import structlog
from redis.exceptions import RedisError

from casemgr import audit
from casemgr.alerts import repository
from casemgr.alerts.schemas import (
    Alert,
    AlertCounts,
    AlertPage,
    AlertStatus,
    InboxFilter,
    Outcome,
    Resolution,
    Severity,
)
from casemgr.auth.principal import Role
from casemgr.cases import repository as cases
from casemgr.cases.access import list_filter, may_read
from casemgr.cases.schemas import Program
from casemgr.cases.service import authorize_case
from casemgr.clock import Clock
from casemgr.context import RequestContext
from casemgr.db import scoped_transaction
from casemgr.errors import Conflict, Forbidden, NotFound
from casemgr.orgunits.service import subtree_path
from casemgr.pagination import cut_page
from casemgr.supervision import repository as supervision
from casemgr.supervision.engine import system_principal

if TYPE_CHECKING:
    from casemgr.resources import Resources

log = structlog.get_logger(__name__)
# Conditions only a person may close: resolving the alert closes them in the tracking core too.
PERSON_CLOSED_KINDS = frozenset({"strap_tamper", "device_case_opened"})


@dataclass(frozen=True, slots=True)
class InboxQuery:
    status: AlertStatus | None = None
    kind: str | None = None
    severity: Severity | None = None
    program: Program | None = None
    org_unit_id: int | None = None
    # Only alerts raised at least this long ago.
    older_than_minutes: int | None = None
    # Only alerts escalated to the caller's own unit.
    escalated_to_me: bool = False
    # Only alerts on the caller's own caseload.
    mine: bool = False
    # Only alerts on this case.
    case_id: int | None = None


async def _scope(
    conn: asyncpg.Connection, ctx: RequestContext, query: InboxQuery, now: datetime
) -> tuple[str, InboxFilter]:
    caller = ctx.caller
    rules = list_filter(caller, query.program, object_type="alert")
    path = await subtree_path(conn, ctx, query.org_unit_id)
    return path, InboxFilter(
        status=query.status.value if query.status else None,
        kind=query.kind,
        severity=query.severity.value if query.severity else None,
        # Alerts about a referral with no case yet belong to the offices that take people on.
        include_unattached=caller.role in (Role.OFFICER, Role.SUPERVISOR),
        program=rules.program.value if rules.program else None,
        shared_only=rules.shared_with_police_only,
        raised_before=None
        if query.older_than_minutes is None
        else now - timedelta(minutes=query.older_than_minutes),
        escalated_to_unit_id=caller.org_unit_id if query.escalated_to_me else None,
        officer_id=caller.account_id if query.mine else None,
        case_id=query.case_id,
    )


async def inbox(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    query: InboxQuery,
    *,
    after: int | None,
    limit: int,
    now: datetime,
    newest_first: bool = False,
) -> AlertPage:
    path, filters = await _scope(conn, ctx, query, now)
    items = await repository.list_alerts(
        conn, path=path, filters=filters, after=after, limit=limit + 1, newest_first=newest_first
    )
    await audit.record(conn, ctx, "alert.list", object_type="alert")
    page, next_after = cut_page(items, limit, key=lambda a: a.id)
    return AlertPage(items=page, next_after=next_after)


async def counts(
    conn: asyncpg.Connection, ctx: RequestContext, query: InboxQuery, now: datetime
) -> AlertCounts:
    path, filters = await _scope(conn, ctx, query, now)
    found = await repository.counts(conn, path=path, filters=filters)
    return AlertCounts(total=sum(c.count for c in found), by_status_and_severity=found)


async def changes_since(
    conn: asyncpg.Connection, ctx: RequestContext, after: int, limit: int, now: datetime
) -> list[tuple[int, Alert]]:
    """New and changed alerts after change ``after``, inside the caller's scope, in order."""
    path, filters = await _scope(conn, ctx, InboxQuery(), now)
    return await repository.changes_after(conn, after, path=path, filters=filters, limit=limit)


async def last_change(conn: asyncpg.Connection) -> int:
    return await repository.last_change(conn)


async def _authorize(conn: asyncpg.Connection, ctx: RequestContext, alert_id: int, verb: str) -> None:
    """404 if there is no such alert; an audited 403 if the caller may not see its case or unit."""
    located = await repository.locate(conn, alert_id)
    if located is None:
        raise NotFound(f"alert {alert_id} does not exist")
    path, case_id = located
    if case_id is not None:
        await authorize_case(conn, ctx, case_id, may_read, verb)
    elif not ctx.caller.sees(path):
        raise Forbidden(
            f"you may not {verb} this alert", reason="out_of_scope", object_type="alert", object_id=alert_id
        )


async def _get(conn: asyncpg.Connection, alert_id: int) -> Alert:
    found = await repository.get(conn, alert_id)
    if found is None:
        raise Forbidden(
            "you may not see this alert",
            reason="denied_by_row_policy",
            object_type="alert",
            object_id=alert_id,
        )
    return found


async def read(conn: asyncpg.Connection, ctx: RequestContext, alert_id: int) -> Alert:
    await _authorize(conn, ctx, alert_id, "read")
    found = await _get(conn, alert_id)
    await audit.record(conn, ctx, "alert.read", object_type="alert", object_id=alert_id)
    return found


async def acknowledge(conn: asyncpg.Connection, ctx: RequestContext, alert_id: int, now: datetime) -> Alert:
    """Someone has seen it and is on it: escalation stops."""
    await _authorize(conn, ctx, alert_id, "acknowledge")
    if not await repository.acknowledge(conn, alert_id, ctx.caller.account_id, now):
        current = await _get(conn, alert_id)
        raise Conflict(f"the alert is {current.status} already")
    await audit.record(conn, ctx, "alert.acknowledge", object_type="alert", object_id=alert_id)
    return await _get(conn, alert_id)


async def resolve(
    conn: asyncpg.Connection, ctx: RequestContext, alert_id: int, data: Resolution, now: datetime
) -> Alert:
    await _authorize(conn, ctx, alert_id, "resolve")
    if not await repository.resolve(
        conn, alert_id, ctx.caller.account_id, now, data.outcome.value, data.note
    ):
        current = await _get(conn, alert_id)
        raise Conflict(f"the alert is {current.status} already")
    await audit.record(
        conn, ctx, "alert.resolve", object_type="alert", object_id=alert_id, reason=data.outcome.value
    )
    resolved = await _get(conn, alert_id)
    if data.outcome is Outcome.CONFIRMED_VIOLATION and resolved.case_id is not None:
        # A confirmed alert is a violation on the case file, where enforcement can build on it.
        await cases.add_event(
            conn,
            resolved.case_id,
            actor_id=ctx.caller.account_id,
            kind="violation",
            note=f"alert {alert_id} ({resolved.kind}): {data.note}",
        )
    return resolved


async def escalate(pool: asyncpg.Pool, now: datetime) -> int:
    """One pass of the escalation scheduler, city by city as the system role; every
    escalation audited. Its state is the alerts' own columns, so a restart loses nothing."""
    async with pool.acquire() as conn:
        roots = await supervision.roots(conn)  # type: ignore[arg-type]
    escalated = 0
    for root_id, root_path in roots:
        async with scoped_transaction(pool, system_principal(root_id, root_path)) as conn:
            for alert_id, level, unit_id in await repository.escalate_due(conn, now):
                ctx = RequestContext(request_id=f"alert-escalation-{root_id}", principal=None)
                await audit.record(
                    conn,
                    ctx,
                    "alert.escalate",
                    object_type="alert",
                    object_id=alert_id,
                    reason=f"level_{level}_to_unit_{unit_id}",
                )
                escalated += 1
    if escalated:
        log.info("alerts_escalated", count=escalated)
    return escalated


async def run_escalation_forever(pool: asyncpg.Pool, clock: Clock, *, every: timedelta) -> None:
    """The scheduler inside a worker; several workers may run it at once (see escalate)."""
    while True:
        try:
            await escalate(pool, clock.now())
        except (OSError, asyncpg.PostgresError) as e:
            log.warning("alert_escalation_failed", error_type=type(e).__name__)
        await asyncio.sleep(every.total_seconds())


async def clear_in_tracking(resources: Resources, alert: Alert) -> None:
    """After a resolution: a strap tamper or an opened case is closed in the tracking core too,
    so that the next one alerts again. Redis away leaves it to the officer's next resolution."""
    device_id = alert.details.get("device_id")
    if alert.kind in PERSON_CLOSED_KINDS and isinstance(device_id, str):
        try:
            await resources.tracking.clear_condition(device_id, alert.kind)
        except (RedisError, OSError) as e:
            log.warning("tracking_clear_failed", alert_id=alert.id, error_type=type(e).__name__)
