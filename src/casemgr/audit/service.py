"""Recording audit events.

``record`` writes in the caller's transaction, so the action and its audit row commit or
fail together. ``record_in_own_transaction`` is for events with no action to join: denials,
and failed logins whose transaction must commit although the request fails.
"""

from __future__ import annotations

from typing import Literal, cast

import asyncpg

from casemgr.audit import repository
from casemgr.audit.repository import AuditEntry, AuditRow
from casemgr.audit.schemas import AuditEvent, AuditFilter, AuditPage
from casemgr.auth.principal import Actor
from casemgr.context import RequestContext
from casemgr.pagination import cut_page

Outcome = Literal["success", "denied", "failure"]


def _entry(
    ctx: RequestContext,
    action: str,
    *,
    outcome: Outcome,
    object_type: str | None,
    object_id: object,
    reason: str | None,
    actor: Actor | None,
) -> AuditEntry:
    who = actor or (ctx.principal.actor if ctx.principal else None)
    return AuditEntry(
        actor_id=who.account_id if who else None,
        actor_role=str(who.role) if who else None,
        actor_org_unit_id=who.org_unit_id if who else None,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        purpose=ctx.purpose,
        outcome=outcome,
        reason=reason,
        request_id=ctx.request_id,
    )


async def record(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    action: str,
    *,
    outcome: Outcome = "success",
    object_type: str | None = None,
    object_id: object = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> None:
    await repository.insert(
        conn,
        _entry(
            ctx,
            action,
            outcome=outcome,
            object_type=object_type,
            object_id=object_id,
            reason=reason,
            actor=actor,
        ),
    )


async def record_in_own_transaction(
    pool: asyncpg.Pool,
    ctx: RequestContext,
    action: str,
    *,
    outcome: Outcome,
    object_type: str | None = None,
    object_id: object = None,
    reason: str | None = None,
) -> None:
    async with pool.acquire() as proxy, proxy.transaction():
        conn = cast(asyncpg.Connection, proxy)
        await record(
            conn, ctx, action, outcome=outcome, object_type=object_type, object_id=object_id, reason=reason
        )


def _event(row: AuditRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=row.at,
        actor_id=row.actor_id,
        actor_role=row.actor_role,
        actor_org_unit_id=row.actor_org_unit_id,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        purpose=row.purpose,
        outcome=row.outcome,
        reason=row.reason,
        request_id=row.request_id,
        hash=row.hash.hex(),
    )


async def read_trail(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    where: AuditFilter,
    *,
    before: int | None,
    limit: int,
) -> AuditPage:
    """Audit events newest first, as the row policies let the caller see them; the reading
    itself is recorded."""
    rows = await repository.list_rows(
        conn,
        before_id=before,
        actor_id=where.actor_id,
        action=where.action,
        object_type=where.object_type,
        object_id=where.object_id,
        outcome=where.outcome,
        limit=limit + 1,
    )
    await record(conn, ctx, "audit.read", object_type="audit_log")
    page, next_before = cut_page(rows, limit, key=lambda r: r.id)
    return AuditPage(items=[_event(r) for r in page], next_before=next_before)
