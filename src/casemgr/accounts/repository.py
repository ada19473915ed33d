"""All SQL of staff accounts. Reads and writes pass the accounts policies (migration 0003)."""

from __future__ import annotations

import asyncpg
import msgspec

from casemgr.accounts.schemas import Account
from casemgr.auth.principal import Role
from casemgr.errors import Conflict

_COLUMNS = """
a.id, a.username, a.display_name, a.role::text AS role, a.org_unit_id,
a.totp_confirmed_at IS NOT NULL AS totp_enrolled, a.locked_at, a.disabled_at, a.created_at
"""
_LOCATE = "SELECT account_locator($1)::text"
_GET = f"SELECT {_COLUMNS} FROM accounts a WHERE a.id = $1"
_LIST = f"""
SELECT {_COLUMNS} FROM accounts a JOIN org_units o ON o.id = a.org_unit_id
 WHERE o.path <@ $1::ltree
   AND ($2::account_role IS NULL OR a.role = $2::account_role)
   AND ($3::bigint IS NULL OR a.id > $3)
 ORDER BY a.id
 LIMIT $4
"""
_INSERT = f"""
INSERT INTO accounts AS a (username, display_name, role, org_unit_id, password_hash)
VALUES ($1, $2, $3::account_role, $4, $5)
RETURNING {_COLUMNS}
"""
_UPDATE = f"""
UPDATE accounts AS a
   SET display_name = coalesce($2, display_name),
       role = coalesce($3::account_role, role),
       org_unit_id = coalesce($4, org_unit_id),
       disabled_at = CASE WHEN $5::boolean IS NULL THEN disabled_at
                          WHEN $5 THEN coalesce(disabled_at, now())
                          ELSE NULL END,
       updated_at = now()
 WHERE a.id = $1
RETURNING {_COLUMNS}
"""
_UNLOCK = f"""
UPDATE accounts AS a SET locked_at = NULL, updated_at = now() WHERE a.id = $1 RETURNING {_COLUMNS}
"""
_CLEAR_FAILURES = "SELECT auth_record_success($1)"
_SET_PASSWORD = "UPDATE accounts SET password_hash = $2, updated_at = now() WHERE id = $1"
_RESET_TOTP = """
UPDATE accounts SET totp_secret = NULL, totp_confirmed_at = NULL, totp_last_step = NULL,
       updated_at = now()
 WHERE id = $1
"""


def _account(record: asyncpg.Record) -> Account:
    return msgspec.convert(dict(record), Account)


async def locate(conn: asyncpg.Connection, account_id: int) -> str | None:
    """The org path of an account, whether or not the caller may read it."""
    path: str | None = await conn.fetchval(_LOCATE, account_id)
    return path


async def get(conn: asyncpg.Connection, account_id: int) -> Account | None:
    record = await conn.fetchrow(_GET, account_id)
    return None if record is None else _account(record)


async def list_under(
    conn: asyncpg.Connection, *, path: str, role: Role | None, after: int | None, limit: int
) -> list[Account]:
    records = await conn.fetch(_LIST, path, role.value if role else None, after, limit)
    return [_account(r) for r in records]


async def insert(
    conn: asyncpg.Connection,
    *,
    username: str,
    display_name: str,
    role: Role,
    org_unit_id: int,
    password_hash: str,
) -> Account:
    try:
        record = await conn.fetchrow(_INSERT, username, display_name, role.value, org_unit_id, password_hash)
    except asyncpg.UniqueViolationError as e:
        raise Conflict(f"the username {username!r} is taken") from e
    assert record is not None
    return _account(record)


async def update(
    conn: asyncpg.Connection,
    account_id: int,
    *,
    display_name: str | None,
    role: Role | None,
    org_unit_id: int | None,
    disabled: bool | None,
) -> Account:
    record = await conn.fetchrow(
        _UPDATE, account_id, display_name, role.value if role else None, org_unit_id, disabled
    )
    assert record is not None
    return _account(record)


async def unlock(conn: asyncpg.Connection, account_id: int) -> Account:
    await conn.execute(_CLEAR_FAILURES, account_id)
    record = await conn.fetchrow(_UNLOCK, account_id)
    assert record is not None
    return _account(record)


async def set_password(conn: asyncpg.Connection, account_id: int, password_hash: str) -> None:
    await conn.execute(_SET_PASSWORD, account_id, password_hash)


async def reset_totp(conn: asyncpg.Connection, account_id: int) -> None:
    await conn.execute(_RESET_TOTP, account_id)
