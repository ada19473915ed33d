"""The application's PostgreSQL pool and the scoped transaction every request runs in.

The pool connects as casemgr_app. ``scoped_transaction`` opens a transaction and sets the
caller's account, role and org-tree scope with ``set_config(..., true)``, which lasts
until the transaction ends: a connection returned to the pool carries no scope, and a
transaction that sets none sees no personal data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, cast

import asyncpg

if TYPE_CHECKING:
    from casemgr.auth.principal import Principal

Connection = asyncpg.Connection  # re-exported for type hints across the code base

_SET_SCOPE = """
SELECT set_config('app.account_id', $1, true),
       set_config('app.role', $2, true),
       set_config('app.scope', $3, true)
"""


async def create_pool(dsn: str, *, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        # Every statement we send is a module constant; a larger cache keeps them prepared.
        statement_cache_size=512,
        command_timeout=30,
    )
    assert pool is not None
    return pool


def rows_affected(status: str) -> int:
    """The row count of a command tag ("UPDATE 3", "INSERT 0 5")."""
    return int(status.rsplit(" ", 1)[-1])


async def set_scope(conn: asyncpg.Connection, *, account_id: int | None, role: str, scope: str) -> None:
    """Set the caller's account, role and scope for the rest of the current transaction."""
    await conn.execute(_SET_SCOPE, "" if account_id is None else str(account_id), role, scope)


@asynccontextmanager
async def scoped_transaction(
    pool: asyncpg.Pool, principal: Principal | None
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction that sees exactly what ``principal`` may see (nothing if None)."""
    async with pool.acquire() as proxy, proxy.transaction():
        # The pool hands out a proxy that forwards every Connection method; the repositories
        # are typed against Connection.
        conn = cast(asyncpg.Connection, proxy)
        if principal is not None:
            await set_scope(conn, account_id=principal.account_id, role=principal.role, scope=principal.scope)
        yield conn
