"""All SQL of the org tree."""

from __future__ import annotations

import asyncpg
import msgspec

from casemgr.errors import Conflict
from casemgr.orgunits.schemas import OrgUnit, OrgUnitKind

_COLUMNS = "id, parent_id, kind::text AS kind, name, code, path::text AS path"
_GET = f"SELECT {_COLUMNS} FROM org_units WHERE id = $1"
_LIST_SUBTREE = f"SELECT {_COLUMNS} FROM org_units WHERE path <@ $1::ltree ORDER BY path"
# The path is built from the id, so the id is drawn first.
_INSERT = f"""
WITH new AS (SELECT nextval(pg_get_serial_sequence('org_units', 'id')) AS id)
INSERT INTO org_units (id, parent_id, kind, name, code, path)
SELECT new.id, $1, $2::org_unit_kind, $3, $4,
       CASE WHEN $5::text IS NULL THEN ''::ltree ELSE $5::ltree END || ('n' || new.id)::ltree
  FROM new
RETURNING {_COLUMNS}
"""
_RENAME = f"UPDATE org_units SET name = $2, updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}"
# Re-root the subtree at the new parent's path; the moved unit also gets its new parent.
_MOVE = """
UPDATE org_units
   SET path = $3::ltree || subpath(path, nlevel($2::ltree) - 1),
       parent_id = CASE WHEN id = $1 THEN $4 ELSE parent_id END,
       updated_at = now()
 WHERE path <@ $2::ltree
"""
_ACCOUNTS_UNDER = """
SELECT a.id FROM accounts a JOIN org_units o ON o.id = a.org_unit_id WHERE o.path <@ $1::ltree
"""
_HAS_CHILDREN = "SELECT EXISTS (SELECT 1 FROM org_units WHERE parent_id = $1)"
_DELETE = "DELETE FROM org_units WHERE id = $1"


def _unit(record: asyncpg.Record) -> OrgUnit:
    return msgspec.convert(dict(record), OrgUnit)


async def get(conn: asyncpg.Connection, unit_id: int) -> OrgUnit | None:
    record = await conn.fetchrow(_GET, unit_id)
    return None if record is None else _unit(record)


async def list_subtree(conn: asyncpg.Connection, path: str) -> list[OrgUnit]:
    return [_unit(r) for r in await conn.fetch(_LIST_SUBTREE, path)]


async def insert(
    conn: asyncpg.Connection, *, parent: OrgUnit | None, kind: OrgUnitKind, name: str, code: str
) -> OrgUnit:
    try:
        record = await conn.fetchrow(
            _INSERT,
            parent.id if parent else None,
            kind.value,
            name,
            code,
            parent.path if parent else None,
        )
    except asyncpg.UniqueViolationError as e:
        raise Conflict(f"an org unit with code {code!r} already exists") from e
    assert record is not None
    return _unit(record)


async def rename(conn: asyncpg.Connection, unit_id: int, name: str) -> OrgUnit:
    record = await conn.fetchrow(_RENAME, unit_id, name)
    assert record is not None
    return _unit(record)


async def move(conn: asyncpg.Connection, unit: OrgUnit, new_parent: OrgUnit) -> None:
    await conn.execute(_MOVE, unit.id, unit.path, new_parent.path, new_parent.id)


async def account_ids_under(conn: asyncpg.Connection, path: str) -> list[int]:
    return [r["id"] for r in await conn.fetch(_ACCOUNTS_UNDER, path)]


async def has_children(conn: asyncpg.Connection, unit_id: int) -> bool:
    found: bool = await conn.fetchval(_HAS_CHILDREN, unit_id)
    return found


async def delete(conn: asyncpg.Connection, unit_id: int) -> None:
    try:
        await conn.execute(_DELETE, unit_id)
    except asyncpg.ForeignKeyViolationError as e:
        raise Conflict("the org unit still has accounts, people or cases attached") from e
