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


@asynccontextmanager
async def scoped_transaction(
    pool: asyncpg.Pool, principal: Principal | None
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction that sees exactly what ``principal`` may see (nothing if None)."""
    async with pool.acquire() as conn, conn.transaction():
        if principal is not None:
            await conn.execute(_SET_SCOPE, str(principal.account_id), principal.role, principal.scope)
        # The pool hands out a proxy that forwards every Connection method; the repositories
        # are typed against Connection.
        yield cast(asyncpg.Connection, conn)
