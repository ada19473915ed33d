"""Recording audit events.

``record`` writes in the caller's transaction, so the action and its audit row commit or
fail together. ``record_in_own_transaction`` is for events with no action to join: denials,
and failed logins whose transaction must commit although the request fails.
"""

from __future__ import annotations

from typing import Literal, cast

import asyncpg

from casemgr.audit import repository
from casemgr.audit.repository import AuditEntry
from casemgr.auth.principal import Actor
from casemgr.context import RequestContext

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
