"""Authentication rules: password, lockout, TOTP second factor, password change.

The functions here run inside the request's transaction and never commit. A refused
attempt is *returned*, not raised: its failure count and audit row must commit although
the request fails, so the controller raises the refusal after the transaction ends.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import msgspec

from casemgr import audit
from casemgr.auth import repository, totp
from casemgr.auth.principal import Actor, MfaState, Principal, Role
from casemgr.context import RequestContext
from casemgr.errors import AccountLocked, CasemgrError, Conflict, Unauthenticated, ValidationFailed
from casemgr.resources import Resources

_BAD_CREDENTIALS = "invalid username or password"


class Granted(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    role: Role
    org_unit_id: int
    scope: str
    mfa: MfaState


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    error: CasemgrError


class TotpEnrolment(msgspec.Struct, frozen=True, kw_only=True):
    secret: str
    otpauth_uri: str


def _totp_aad(account_id: int) -> bytes:
    return f"accounts.totp_secret:{account_id}".encode()


def _refuse(error: CasemgrError) -> Refused:
    error.already_audited = True
    return Refused(error=error)


async def _count_failure(conn: asyncpg.Connection, resources: Resources, account_id: int) -> bool:
    """Record a failed password or code; returns whether the account is locked now."""
    settings = resources.settings
    return await repository.record_failure(
        conn,
        account_id,
        window=timedelta(seconds=settings.login_failure_window_seconds),
        max_failures=settings.login_max_failures,
    )


async def _scope_for(conn: asyncpg.Connection, role: Role, unit_path: str) -> str:
    if role is Role.OFFICER:
        return await repository.office_path(conn, unit_path) or unit_path
    return unit_path


async def authenticate(
    conn: asyncpg.Connection,
    resources: Resources,
    ctx: RequestContext,
    username: str,
    password: str,
) -> Granted | Refused:
    settings = resources.settings
    creds = await repository.find_credentials(conn, username.strip().lower())
    # Verify even when there is nothing to verify against, so timing reveals no usernames.
    password_ok = await resources.passwords.verify(creds.password_hash if creds else None, password)
    if creds is None:
        await audit.record(conn, ctx, "auth.login", outcome="failure", reason="unknown_username")
        return _refuse(Unauthenticated(_BAD_CREDENTIALS, reason="unknown_username"))
    actor = Actor(account_id=creds.id, role=creds.role, org_unit_id=creds.org_unit_id)
    if creds.disabled_at is not None:
        await audit.record(
            conn,
            ctx,
            "auth.login",
            outcome="failure",
            reason="account_disabled",
            object_type="account",
            object_id=creds.id,
            actor=actor,
        )
        return _refuse(Unauthenticated(_BAD_CREDENTIALS, reason="account_disabled"))
    if not password_ok:
        locked = await _count_failure(conn, resources, creds.id)
        await audit.record(
            conn,
            ctx,
            "auth.login",
            outcome="failure",
            reason="wrong_password_locked" if locked else "wrong_password",
            object_type="account",
            object_id=creds.id,
            actor=actor,
        )
        return _refuse(Unauthenticated(_BAD_CREDENTIALS, reason="wrong_password"))
    if creds.locked_at is not None:
        await audit.record(
            conn,
            ctx,
            "auth.login",
            outcome="failure",
            reason="account_locked",
            object_type="account",
            object_id=creds.id,
            actor=actor,
        )
        return _refuse(
            AccountLocked(
                "this account is locked after repeated failed logins; an administrator must unlock it",
            )
        )
    if resources.passwords.needs_rehash(creds.password_hash):
        await repository.set_password(conn, creds.id, await resources.passwords.hash(password))
    if not settings.mfa_required:
        mfa = MfaState.NOT_REQUIRED
        # The failure count resets only once the login is complete: with a second factor
        # to come, wrong codes after a right password must keep adding up.
        await repository.record_success(conn, creds.id)
    elif creds.totp_confirmed_at is not None:
        mfa = MfaState.PENDING
    else:
        mfa = MfaState.ENROL
    await audit.record(
        conn,
        ctx,
        "auth.login",
        outcome="success",
        object_type="account",
        object_id=creds.id,
        actor=actor,
        reason=None if mfa is MfaState.NOT_REQUIRED else f"totp_{mfa}",
    )
    return Granted(
        account_id=creds.id,
        role=creds.role,
        org_unit_id=creds.org_unit_id,
        scope=await _scope_for(conn, creds.role, creds.org_path),
        mfa=mfa,
    )


async def _own_totp(conn: asyncpg.Connection, account_id: int) -> repository.OwnTotp:
    own = await repository.own_totp(conn, account_id)
    if own is None:
        raise Unauthenticated("the account no longer exists", reason="account_missing")
    return own


async def begin_totp_enrolment(
    conn: asyncpg.Connection, resources: Resources, ctx: RequestContext
) -> TotpEnrolment:
    caller = ctx.caller
    own = await _own_totp(conn, caller.account_id)
    if own.confirmed or caller.mfa is not MfaState.ENROL:
        raise Conflict("a second factor is already enrolled; an administrator can reset it")
    secret = totp.new_secret()
    sealed = resources.keyring.seal(secret.encode(), _totp_aad(caller.account_id))
    await repository.set_totp_secret(conn, caller.account_id, sealed)
    await audit.record(conn, ctx, "auth.totp_enrol", object_type="account", object_id=caller.account_id)
    return TotpEnrolment(
        secret=secret,
        otpauth_uri=totp.provisioning_uri(
            secret, account_name=own.username, issuer=resources.settings.totp_issuer
        ),
    )


async def verify_totp(
    conn: asyncpg.Connection, resources: Resources, ctx: RequestContext, code: str
) -> Granted | Refused:
    caller = ctx.caller
    if caller.mfa not in (MfaState.PENDING, MfaState.ENROL):
        raise Conflict("this session has no second factor to verify")
    own = await _own_totp(conn, caller.account_id)
    sealed, confirmed = own.sealed_secret, own.confirmed
    if sealed is None:
        raise Conflict("no second factor enrolled yet: POST /auth/totp/enrol first")
    secret = resources.keyring.open(sealed, _totp_aad(caller.account_id)).decode()
    step = totp.matching_step(secret, code, resources.clock.now())
    if step is None or not await repository.use_totp_step(conn, caller.account_id, step):
        locked = await _count_failure(conn, resources, caller.account_id)
        await audit.record(
            conn,
            ctx,
            "auth.totp_verify",
            outcome="failure",
            reason="wrong_code_locked" if locked else "wrong_code",
            object_type="account",
            object_id=caller.account_id,
        )
        if locked:
            await resources.sessions.revoke_account(caller.account_id)
        return _refuse(Unauthenticated("the code is wrong, expired or already used", reason="wrong_code"))
    if not confirmed:
        await repository.confirm_totp(conn, caller.account_id)
    await repository.record_success(conn, caller.account_id)
    await audit.record(
        conn,
        ctx,
        "auth.totp_verify",
        object_type="account",
        object_id=caller.account_id,
        reason=None if confirmed else "enrolment_confirmed",
    )
    return Granted(
        account_id=caller.account_id,
        role=caller.role,
        org_unit_id=caller.org_unit_id,
        scope=caller.scope,
        mfa=MfaState.PASSED,
    )


async def change_password(
    conn: asyncpg.Connection,
    resources: Resources,
    ctx: RequestContext,
    current_password: str,
    new_password: str,
) -> None:
    caller: Principal = ctx.caller
    stored = await repository.own_password_hash(conn, caller.account_id)
    if stored is None or not await resources.passwords.verify(stored, current_password):
        raise ValidationFailed("the current password is wrong", field="current_password")
    resources.passwords.check_policy(new_password, "new_password")
    if new_password == current_password:
        raise ValidationFailed("the new password must differ from the current one", field="new_password")
    await repository.set_password(conn, caller.account_id, await resources.passwords.hash(new_password))
    await audit.record(conn, ctx, "auth.password_change", object_type="account", object_id=caller.account_id)
