"""HTTP routes of account administration (admins, inside their subtree)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.di import Provide
from litestar.params import FromQuery, JSONBody, QueryParameter

from casemgr.accounts import service
from casemgr.accounts.schemas import (
    Account,
    AccountCreate,
    AccountPage,
    AccountUpdate,
    PasswordReset,
)
from casemgr.auth.principal import Role
from casemgr.db import scoped_transaction
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import MAX_ID, Cursor, IdPath

ADMIN = (Role.ADMIN,)


class AccountController(Controller):
    path = "/accounts"
    tags = ["accounts"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @get("/", opt=access("account.list", ADMIN))
    async def list_accounts(
        self,
        request: AnyRequest,
        ctx: Ctx,
        role: FromQuery[Role | None] = None,
        org_unit_id: Annotated[
            int | None, QueryParameter(ge=1, le=MAX_ID, description="only this subtree")
        ] = None,
        after: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> AccountPage:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.list_accounts(
                conn, ctx, role=role, org_unit_id=org_unit_id, after=after, limit=limit
            )

    @post("/", opt=access("account.create", ADMIN))
    async def create_account(self, request: AnyRequest, data: JSONBody[AccountCreate], ctx: Ctx) -> Account:
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.create(conn, ctx, resources.passwords, data)

    @get("/{account_id:int}", opt=access("account.read", ADMIN))
    async def get_account(self, request: AnyRequest, account_id: IdPath, ctx: Ctx) -> Account:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.get(conn, ctx, account_id)

    @patch("/{account_id:int}", opt=access("account.update", ADMIN))
    async def update_account(
        self, request: AnyRequest, account_id: IdPath, data: JSONBody[AccountUpdate], ctx: Ctx
    ) -> Account:
        """Change name, role, unit or standing; a change of role, unit or standing ends the
        account's sessions."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            account, revoke = await service.update(conn, ctx, account_id, data)
        if revoke:
            await resources.sessions.revoke_account(account_id)
        return account

    @post("/{account_id:int}/unlock", status_code=200, opt=access("account.unlock", ADMIN))
    async def unlock_account(self, request: AnyRequest, account_id: IdPath, ctx: Ctx) -> Account:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.unlock(conn, ctx, account_id)

    @post("/{account_id:int}/password", status_code=204, opt=access("account.password_reset", ADMIN))
    async def reset_password(
        self, request: AnyRequest, account_id: IdPath, data: JSONBody[PasswordReset], ctx: Ctx
    ) -> None:
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            await service.reset_password(conn, ctx, resources.passwords, account_id, data.new_password)
        await resources.sessions.revoke_account(account_id)

    @post("/{account_id:int}/totp/reset", status_code=204, opt=access("account.totp_reset", ADMIN))
    async def reset_totp(self, request: AnyRequest, account_id: IdPath, ctx: Ctx) -> None:
        """Forget the account's second factor; it enrols again at its next login."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            await service.reset_totp(conn, ctx, account_id)
        await resources.sessions.revoke_account(account_id)
