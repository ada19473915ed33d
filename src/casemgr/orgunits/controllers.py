"""HTTP routes of the org tree: everyone reads their subtree, admins change it."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.di import Provide
from litestar.params import JSONBody

from casemgr.auth.principal import ALL_ROLES, Role
from casemgr.db import scoped_transaction
from casemgr.orgunits import service
from casemgr.orgunits.schemas import OrgUnit, OrgUnitCreate, OrgUnitUpdate
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import IdPath

ADMIN = (Role.ADMIN,)


class OrgUnitController(Controller):
    path = "/org-units"
    tags = ["org units"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @get("/", opt=access("org_unit.list", ALL_ROLES))
    async def list_units(self, request: AnyRequest, ctx: Ctx) -> list[OrgUnit]:
        """The units of the caller's scope, in tree order."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.list_visible(conn, ctx)

    @get("/{unit_id:int}", opt=access("org_unit.read", ALL_ROLES))
    async def get_unit(self, request: AnyRequest, unit_id: IdPath, ctx: Ctx) -> OrgUnit:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.unit_in_scope(conn, ctx, unit_id)

    @post("/", opt=access("org_unit.create", ADMIN))
    async def create_unit(self, request: AnyRequest, data: JSONBody[OrgUnitCreate], ctx: Ctx) -> OrgUnit:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.create(conn, ctx, data)

    @patch("/{unit_id:int}", opt=access("org_unit.update", ADMIN))
    async def update_unit(
        self, request: AnyRequest, unit_id: IdPath, data: JSONBody[OrgUnitUpdate], ctx: Ctx
    ) -> OrgUnit:
        """Rename a unit, or move it (with its subtree) under another parent."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            updated = await service.update(conn, ctx, unit_id, data)
        for account_id in updated.moved_account_ids:
            await resources.sessions.revoke_account(account_id)
        return updated.unit

    @delete("/{unit_id:int}", opt=access("org_unit.delete", ADMIN))
    async def delete_unit(self, request: AnyRequest, unit_id: IdPath, ctx: Ctx) -> None:
        """Delete an empty unit (no child units, accounts, people or cases)."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            await service.delete(conn, ctx, unit_id)
