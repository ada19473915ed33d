"""Rules of account administration: an admin manages the accounts inside their subtree,
never their own role, unit or standing, and never reads case data."""

from __future__ import annotations

from typing import TypeVar

import asyncpg
import msgspec

from casemgr import audit
from casemgr.accounts import repository
from casemgr.accounts.schemas import Account, AccountCreate, AccountPage, AccountUpdate
from casemgr.auth.passwords import Passwords
from casemgr.auth.principal import Role
from casemgr.context import RequestContext
from casemgr.errors import Forbidden, NotFound
from casemgr.orgunits.service import subtree_path, unit_in_scope
from casemgr.pagination import cut_page

T = TypeVar("T")


def _value(value: T | msgspec.UnsetType) -> T | None:
    return None if isinstance(value, msgspec.UnsetType) else value


async def _locate(conn: asyncpg.Connection, ctx: RequestContext, account_id: int) -> Account:
    """Object-level check first (where does it sit?), then the read through the policies."""
    path = await repository.locate(conn, account_id)
    if path is None:
        raise NotFound(f"account {account_id} does not exist")
    if not ctx.caller.sees(path):
        raise Forbidden(
            "the account lies outside your scope",
            reason="out_of_scope",
            object_type="account",
            object_id=account_id,
        )
    account = await repository.get(conn, account_id)
    if account is None:  # the policies disagree with the check above: deny, never leak
        raise Forbidden(
            "the account lies outside your scope",
            reason="out_of_scope_rls",
            object_type="account",
            object_id=account_id,
        )
    return account


async def get(conn: asyncpg.Connection, ctx: RequestContext, account_id: int) -> Account:
    account = await _locate(conn, ctx, account_id)
    await audit.record(conn, ctx, "account.read", object_type="account", object_id=account_id)
    return account


async def list_accounts(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    *,
    role: Role | None,
    org_unit_id: int | None,
    after: int | None,
    limit: int,
) -> AccountPage:
    path = await subtree_path(conn, ctx, org_unit_id)
    items = await repository.list_under(conn, path=path, role=role, after=after, limit=limit + 1)
    await audit.record(conn, ctx, "account.list", object_type="account")
    page, next_after = cut_page(items, limit, key=lambda a: a.id)
    return AccountPage(items=page, next_after=next_after)


async def create(
    conn: asyncpg.Connection, ctx: RequestContext, passwords: Passwords, data: AccountCreate
) -> Account:
    passwords.check_policy(data.password)
    await unit_in_scope(conn, ctx, data.org_unit_id, field="org_unit_id")
    account = await repository.insert(
        conn,
        username=data.username,
        display_name=data.display_name,
        role=data.role,
        org_unit_id=data.org_unit_id,
        password_hash=await passwords.hash(data.password),
    )
    await audit.record(conn, ctx, "account.create", object_type="account", object_id=account.id)
    return account


async def update(
    conn: asyncpg.Connection, ctx: RequestContext, account_id: int, data: AccountUpdate
) -> tuple[Account, bool]:
    """Returns the account and whether its sessions must end (role, unit or standing changed)."""
    current = await _locate(conn, ctx, account_id)
    role, unit_id, disabled = _value(data.role), _value(data.org_unit_id), _value(data.disabled)
    if account_id == ctx.caller.account_id and (role or unit_id or disabled is not None):
        raise Forbidden(
            "you cannot change your own role, unit or standing",
            reason="self_change",
            object_type="account",
            object_id=account_id,
        )
    if unit_id is not None:
        await unit_in_scope(conn, ctx, unit_id, field="org_unit_id")
    account = await repository.update(
        conn,
        account_id,
        display_name=_value(data.display_name),
        role=role,
        org_unit_id=unit_id,
        disabled=disabled,
    )
    await audit.record(conn, ctx, "account.update", object_type="account", object_id=account_id)
    changed = (
        account.role != current.role
        or account.org_unit_id != current.org_unit_id
        or (account.disabled_at is not None) != (current.disabled_at is not None)
    )
    return account, changed


async def unlock(conn: asyncpg.Connection, ctx: RequestContext, account_id: int) -> Account:
    await _locate(conn, ctx, account_id)
    account = await repository.unlock(conn, account_id)
    await audit.record(conn, ctx, "account.unlock", object_type="account", object_id=account_id)
    return account


async def reset_password(
    conn: asyncpg.Connection, ctx: RequestContext, passwords: Passwords, account_id: int, new_password: str
) -> None:
    await _locate(conn, ctx, account_id)
    passwords.check_policy(new_password, "new_password")
    await repository.set_password(conn, account_id, await passwords.hash(new_password))
    await audit.record(conn, ctx, "account.password_reset", object_type="account", object_id=account_id)


async def reset_totp(conn: asyncpg.Connection, ctx: RequestContext, account_id: int) -> None:
    await _locate(conn, ctx, account_id)
    await repository.reset_totp(conn, account_id)
    await audit.record(conn, ctx, "account.totp_reset", object_type="account", object_id=account_id)
