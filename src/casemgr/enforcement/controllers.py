"""HTTP routes of enforcement."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.params import JSONBody

from casemgr.auth.principal import CASE_WRITERS, Role
from casemgr.db import scoped_transaction
from casemgr.enforcement import service
from casemgr.enforcement.schemas import Enforcement, EnforcementCreate, Rejection
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import IdPath

SIGNERS = (Role.SUPERVISOR,)


class EnforcementController(Controller):
    path = "/"
    tags = ["enforcement"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @post("/cases/{case_id:int}/enforcement", opt=access("enforcement.propose", CASE_WRITERS))
    async def propose(
        self, request: AnyRequest, case_id: IdPath, data: JSONBody[EnforcementCreate], ctx: Ctx
    ) -> Enforcement:
        """A warning (issued at once), or a proposal to revoke (needs two sign-offs)."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.propose(conn, ctx, case_id, data, resources.clock.now())

    @get("/cases/{case_id:int}/enforcement", opt=access("enforcement.list", CASE_WRITERS))
    async def list_for_case(self, request: AnyRequest, case_id: IdPath, ctx: Ctx) -> list[Enforcement]:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.list_for_case(conn, ctx, case_id)

    @post("/enforcement/{enforcement_id:int}/sign", status_code=200, opt=access("enforcement.sign", SIGNERS))
    async def sign(self, request: AnyRequest, enforcement_id: IdPath, ctx: Ctx) -> Enforcement:
        """The office head signs first, then the district head."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.sign(conn, ctx, enforcement_id, resources.clock.now())

    @post(
        "/enforcement/{enforcement_id:int}/reject", status_code=200, opt=access("enforcement.reject", SIGNERS)
    )
    async def reject(
        self, request: AnyRequest, enforcement_id: IdPath, data: JSONBody[Rejection], ctx: Ctx
    ) -> Enforcement:
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.reject(conn, ctx, enforcement_id, data, resources.clock.now())
