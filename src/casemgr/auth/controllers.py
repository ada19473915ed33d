"""HTTP routes of authentication: thin, each one transaction, then the session store."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.params import JSONBody

from casemgr import audit
from casemgr.auth import service
from casemgr.auth.principal import ALL_ROLES
from casemgr.auth.schemas import (
    LoginRequest,
    MeOut,
    PasswordChange,
    SessionOut,
    TotpCode,
    TotpEnrolmentOut,
)
from casemgr.auth.sessions import IssuedSession
from casemgr.db import scoped_transaction
from casemgr.resources import Resources
from casemgr.web.access import AnyRequest, Ctx, access, public, request_context, resources_of


def _session_out(issued: IssuedSession) -> SessionOut:
    return SessionOut(
        token=issued.token, expires_at=issued.expires_at, role=issued.principal.role, mfa=issued.principal.mfa
    )


async def _issue(resources: Resources, granted: service.Granted) -> IssuedSession:
    return await resources.sessions.issue(
        account_id=granted.account_id,
        role=granted.role,
        org_unit_id=granted.org_unit_id,
        scope=granted.scope,
        mfa=granted.mfa,
    )


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @post("/login", status_code=200, opt=public("auth.login", login=True))
    async def login(self, request: AnyRequest, data: JSONBody[LoginRequest], ctx: Ctx) -> SessionOut:
        """Check a password. The session it returns may still need the second factor."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, None) as conn:
            outcome = await service.authenticate(conn, resources, ctx, data.username, data.password)
        if isinstance(outcome, service.Refused):
            raise outcome.error
        return _session_out(await _issue(resources, outcome))

    @post("/totp/enrol", status_code=200, opt=access("auth.totp_enrol", ALL_ROLES, mfa_stage=True))
    async def enrol_totp(self, request: AnyRequest, ctx: Ctx) -> TotpEnrolmentOut:
        """Start TOTP enrolment: returns the secret once, to load into an authenticator app."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            enrolment = await service.begin_totp_enrolment(conn, resources, ctx)
        return TotpEnrolmentOut(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri)

    @post("/totp/verify", status_code=200, opt=access("auth.totp_verify", ALL_ROLES, mfa_stage=True))
    async def verify_totp(self, request: AnyRequest, data: JSONBody[TotpCode], ctx: Ctx) -> SessionOut:
        """Check a TOTP code; on success the pending session is replaced by a full one."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            outcome = await service.verify_totp(conn, resources, ctx, data.code)
        if isinstance(outcome, service.Refused):
            raise outcome.error
        await resources.sessions.revoke(ctx.caller)
        return _session_out(await _issue(resources, outcome))

    @post("/logout", status_code=204, opt=access("auth.logout", ALL_ROLES, mfa_stage=True))
    async def logout(self, request: AnyRequest, ctx: Ctx) -> None:
        resources = resources_of(request)
        await resources.sessions.revoke(ctx.caller)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            await audit.record(
                conn, ctx, "auth.logout", object_type="account", object_id=ctx.caller.account_id
            )

    @get("/me", opt=access("auth.me", ALL_ROLES, mfa_stage=True))
    async def me(self, ctx: Ctx) -> MeOut:
        caller = ctx.caller
        return MeOut(
            account_id=caller.account_id,
            role=caller.role,
            org_unit_id=caller.org_unit_id,
            scope=caller.scope,
            mfa=caller.mfa,
        )

    @post("/password", status_code=204, opt=access("auth.password_change", ALL_ROLES))
    async def change_password(self, request: AnyRequest, data: JSONBody[PasswordChange], ctx: Ctx) -> None:
        """Change one's own password; every other session of the account ends."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            await service.change_password(conn, resources, ctx, data.current_password, data.new_password)
        await resources.sessions.revoke_account(ctx.caller.account_id, keep=ctx.caller.session_id)
