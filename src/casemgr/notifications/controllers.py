"""HTTP routes of notification endpoints and their backlog."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.params import JSONBody, QueryParameter

from casemgr.auth.principal import Role
from casemgr.db import scoped_transaction
from casemgr.notifications import service
from casemgr.notifications.schemas import BacklogRow, Endpoint, EndpointCreate, EndpointCredentials
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import MAX_ID, IdPath

MANAGERS = (Role.ADMIN, Role.SUPERVISOR)
UnitId = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)]


class NotificationController(Controller):
    path = "/notification-endpoints"
    tags = ["notifications"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @post("/", opt=access("notification.endpoint_add", MANAGERS))
    async def add(self, request: AnyRequest, data: JSONBody[EndpointCreate], ctx: Ctx) -> EndpointCredentials:
        """A webhook (its signing secret is shown in this reply only) or an SMS number that
        receives the alerts of a unit and everything under it."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.add_endpoint(conn, ctx, resources.keyring, data, resources.clock.now())

    @get("/", opt=access("notification.endpoint_list", MANAGERS))
    async def list_endpoints(
        self, request: AnyRequest, ctx: Ctx, org_unit_id: UnitId = None
    ) -> list[Endpoint]:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.list_endpoints(conn, ctx, org_unit_id)

    @get("/backlog", opt=access("notification.backlog", MANAGERS))
    async def backlog(self, request: AnyRequest, ctx: Ctx, org_unit_id: UnitId = None) -> list[BacklogRow]:
        """Per endpoint: how many notifications wait, were delivered, or died after the last retry."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.backlog(conn, ctx, org_unit_id)

    @post(
        "/{endpoint_id:int}/deactivate",
        status_code=200,
        opt=access("notification.endpoint_deactivate", MANAGERS),
    )
    async def deactivate(self, request: AnyRequest, endpoint_id: IdPath, ctx: Ctx) -> Endpoint:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.deactivate(conn, ctx, endpoint_id)
