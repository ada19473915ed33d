"""Administration that runs as the database owner, outside any request: creating the
first admin and the demo city. Writes still pass the row policies (FORCE), so each one
runs under an explicit administrative scope, and each is audited like any other write."""

from __future__ import annotations

import uuid

import asyncpg

from casemgr import audit, db
from casemgr.auth.passwords import Passwords
from casemgr.auth.principal import Role
from casemgr.context import RequestContext
from casemgr.errors import Conflict, ValidationFailed

_FIND_UNIT = "SELECT id, path::text AS path, kind::text AS kind FROM org_units WHERE code = $1"
_INSERT_CITY = """
WITH new AS (SELECT nextval(pg_get_serial_sequence('org_units', 'id')) AS id)
INSERT INTO org_units (id, parent_id, kind, name, code, path)
SELECT new.id, NULL, 'city', $1, $2, ('n' || new.id)::ltree FROM new
RETURNING id, path::text AS path
"""
_INSERT_ACCOUNT = """
INSERT INTO accounts (username, display_name, role, org_unit_id, password_hash)
VALUES ($1, $2, $3::account_role, $4, $5)
RETURNING id
"""


def cli_context() -> RequestContext:
    return RequestContext(request_id=f"cli-{uuid.uuid4().hex[:12]}")


async def set_scope(
    conn: asyncpg.Connection, *, role: Role, scope: str, account_id: int | None = None
) -> None:
    await db.set_scope(conn, account_id=account_id, role=role.value, scope=scope)


async def ensure_city(conn: asyncpg.Connection, *, code: str, name: str) -> tuple[int, str]:
    found = await conn.fetchrow(_FIND_UNIT, code)
    if found is not None:
        if found["kind"] != "city":
            raise ValidationFailed(f"org unit {code!r} exists and is not a city", field="city")
        return found["id"], found["path"]
    created = await conn.fetchrow(_INSERT_CITY, name, code)
    assert created is not None
    return created["id"], created["path"]


async def create_account(
    conn: asyncpg.Connection,
    passwords: Passwords,
    *,
    username: str,
    display_name: str,
    role: Role,
    org_unit_code: str,
    password: str,
    ctx: RequestContext,
) -> int:
    """Create an account in the unit with ``org_unit_code``, as an admin of that unit."""
    passwords.check_policy(password)
    unit = await conn.fetchrow(_FIND_UNIT, org_unit_code)
    if unit is None:
        raise ValidationFailed(f"no org unit with code {org_unit_code!r}", field="org_unit")
    await set_scope(conn, role=Role.ADMIN, scope=unit["path"])
    try:
        account_id: int = await conn.fetchval(
            _INSERT_ACCOUNT,
            username,
            display_name,
            role.value,
            unit["id"],
            await passwords.hash(password),
        )
    except asyncpg.UniqueViolationError as e:
        raise Conflict(f"the username {username!r} is taken") from e
    # No account acted: the row says the command line did, under the request id it printed.
    await audit.record(
        conn, ctx, "account.create", object_type="account", object_id=account_id, reason="command_line"
    )
    return account_id
