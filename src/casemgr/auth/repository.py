"""All SQL of authentication. Credential lookups and changes go through SECURITY DEFINER
functions (migration 0003): a caller has no scope yet when logging in, and nobody gets
UPDATE on their own account row."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import msgspec

from casemgr.auth.principal import Role

_FIND = """
SELECT id, role, org_unit_id, org_path::text AS org_path, password_hash, totp_secret,
       totp_confirmed_at, locked_at, disabled_at
  FROM auth_find_account($1)
"""
_RECORD_FAILURE = "SELECT auth_record_failure($1, $2, $3)"
_RECORD_SUCCESS = "SELECT auth_record_success($1)"
_USE_TOTP_STEP = "SELECT auth_use_totp_step($1, $2)"
_SET_TOTP_SECRET = "SELECT auth_set_totp_secret($1, $2)"
_CONFIRM_TOTP = "SELECT auth_confirm_totp($1)"
_SET_PASSWORD = "SELECT auth_set_password($1, $2)"
# The caller's own row, visible to them through the accounts policy (id = app_account_id()).
_OWN_TOTP = """
SELECT username, totp_secret AS sealed_secret, totp_confirmed_at IS NOT NULL AS confirmed
  FROM accounts WHERE id = $1
"""
_OWN_PASSWORD_HASH = "SELECT password_hash FROM accounts WHERE id = $1"
# An officer reads their office's cases: their scope is the nearest office at or above
# their own unit. Everyone else's scope is the subtree of their own unit.
_OFFICE_PATH = """
SELECT path::text FROM org_units
 WHERE kind = 'office' AND path @> $1::ltree
 ORDER BY nlevel(path) DESC
 LIMIT 1
"""


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    role: Role
    org_unit_id: int
    org_path: str
    password_hash: str
    totp_secret: bytes | None
    totp_confirmed_at: datetime | None
    locked_at: datetime | None
    disabled_at: datetime | None


class OwnTotp(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    sealed_secret: bytes | None
    confirmed: bool


async def own_totp(conn: asyncpg.Connection, account_id: int) -> OwnTotp | None:
    record = await conn.fetchrow(_OWN_TOTP, account_id)
    return None if record is None else OwnTotp(**dict(record))


async def own_password_hash(conn: asyncpg.Connection, account_id: int) -> str | None:
    stored: str | None = await conn.fetchval(_OWN_PASSWORD_HASH, account_id)
    return stored


async def find_credentials(conn: asyncpg.Connection, username: str) -> Credentials | None:
    record = await conn.fetchrow(_FIND, username)
    return None if record is None else msgspec.convert(dict(record), Credentials)


async def record_failure(
    conn: asyncpg.Connection, account_id: int, *, window: timedelta, max_failures: int
) -> bool:
    """Count a failed attempt; returns whether the account is now locked."""
    locked: bool = await conn.fetchval(_RECORD_FAILURE, account_id, window, max_failures)
    return locked


async def record_success(conn: asyncpg.Connection, account_id: int) -> None:
    await conn.execute(_RECORD_SUCCESS, account_id)


async def use_totp_step(conn: asyncpg.Connection, account_id: int, step: int) -> bool:
    used: bool = await conn.fetchval(_USE_TOTP_STEP, account_id, step)
    return used


async def set_totp_secret(conn: asyncpg.Connection, account_id: int, sealed: bytes) -> None:
    await conn.execute(_SET_TOTP_SECRET, account_id, sealed)


async def confirm_totp(conn: asyncpg.Connection, account_id: int) -> None:
    await conn.execute(_CONFIRM_TOTP, account_id)


async def set_password(conn: asyncpg.Connection, account_id: int, password_hash: str) -> None:
    await conn.execute(_SET_PASSWORD, account_id, password_hash)


async def office_path(conn: asyncpg.Connection, unit_path: str) -> str | None:
    path: str | None = await conn.fetchval(_OFFICE_PATH, unit_path)
    return path
