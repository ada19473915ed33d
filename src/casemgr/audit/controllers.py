"""HTTP routes of the audit trail: auditors read it inside their scope (and that is audited)."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromQuery, QueryParameter

from casemgr.audit import service
from casemgr.audit.schemas import AuditFilter, AuditPage
from casemgr.auth.principal import Role
from casemgr.db import scoped_transaction
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import MAX_ID, Cursor


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @get("/", opt=access("audit.read", (Role.AUDITOR,)))
    async def list_events(
        self,
        request: AnyRequest,
        ctx: Ctx,
        actor_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
        action: Annotated[str | None, QueryParameter(max_length=64)] = None,
        object_type: Annotated[str | None, QueryParameter(max_length=64)] = None,
        object_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
        outcome: FromQuery[Literal["success", "denied", "failure"] | None] = None,
        before: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        """Audit events, newest first. Reading the trail is itself recorded in it."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.read_trail(
                conn,
                ctx,
                AuditFilter(
                    actor_id=actor_id,
                    action=action,
                    object_type=object_type,
                    object_id=object_id,
                    outcome=outcome,
                ),
                before=before,
                limit=limit,
            )
