"""Rules of the org tree: kinds nest city > district > office > community > grid, and an
admin changes only what lies inside their own subtree."""

from __future__ import annotations

import asyncpg
import msgspec

from casemgr import audit
from casemgr.context import RequestContext
from casemgr.errors import Conflict, Forbidden, NotFound, ValidationFailed
from casemgr.orgunits import repository
from casemgr.orgunits.schemas import OrgUnit, OrgUnitCreate, OrgUnitKind, OrgUnitUpdate


async def unit_in_scope(
    conn: asyncpg.Connection, ctx: RequestContext, unit_id: int, *, field: str | None = None
) -> OrgUnit:
    """The unit, if it lies inside the caller's scope; 403 (audited) if it lies outside.

    A unit that does not exist is a 404 when it is the object of the request, or a 422
    naming ``field`` when the request merely refers to it.
    """
    unit = await repository.get(conn, unit_id)
    if unit is None:
        if field is not None:
            raise ValidationFailed(f"org unit {unit_id} does not exist", field=field)
        raise NotFound(f"org unit {unit_id} does not exist")
    if not ctx.caller.sees(unit.path):
        raise Forbidden(
            "the org unit lies outside your scope",
            reason="out_of_scope",
            object_type="org_unit",
            object_id=unit_id,
        )
    return unit


async def subtree_path(conn: asyncpg.Connection, ctx: RequestContext, org_unit_id: int | None) -> str:
    """The path a list covers: the caller's whole scope, or a unit inside it (403 outside)."""
    if org_unit_id is None:
        return ctx.caller.scope
    return (await unit_in_scope(conn, ctx, org_unit_id, field="org_unit_id")).path


def _check_nesting(parent: OrgUnit, kind: OrgUnitKind) -> None:
    if kind.rank <= parent.kind.rank:
        raise ValidationFailed(
            f"a {kind} cannot sit under a {parent.kind}: units nest city > district > office "
            "> community > grid",
            field="kind",
        )


async def list_visible(conn: asyncpg.Connection, ctx: RequestContext) -> list[OrgUnit]:
    return await repository.list_subtree(conn, ctx.caller.scope)


async def create(conn: asyncpg.Connection, ctx: RequestContext, data: OrgUnitCreate) -> OrgUnit:
    parent = await unit_in_scope(conn, ctx, data.parent_id, field="parent_id")
    _check_nesting(parent, data.kind)
    unit = await repository.insert(conn, parent=parent, kind=data.kind, name=data.name, code=data.code)
    await audit.record(conn, ctx, "org_unit.create", object_type="org_unit", object_id=unit.id)
    return unit


class Updated(msgspec.Struct, frozen=True, kw_only=True):
    unit: OrgUnit
    # Accounts whose scope path changed with a move: their sessions must end.
    moved_account_ids: list[int]


async def update(conn: asyncpg.Connection, ctx: RequestContext, unit_id: int, data: OrgUnitUpdate) -> Updated:
    unit = await unit_in_scope(conn, ctx, unit_id)
    moved: list[int] = []
    if not isinstance(data.parent_id, msgspec.UnsetType) and data.parent_id != unit.parent_id:
        if unit.parent_id is None:
            raise ValidationFailed("the city at the root cannot move", field="parent_id")
        new_parent = await unit_in_scope(conn, ctx, data.parent_id, field="parent_id")
        if new_parent.path == unit.path or new_parent.path.startswith(unit.path + "."):
            raise ValidationFailed("a unit cannot move under itself", field="parent_id")
        _check_nesting(new_parent, unit.kind)
        moved = await repository.account_ids_under(conn, unit.path)
        await repository.move(conn, unit, new_parent)
    if not isinstance(data.name, msgspec.UnsetType):
        await repository.rename(conn, unit_id, data.name)
    await audit.record(conn, ctx, "org_unit.update", object_type="org_unit", object_id=unit_id)
    updated = await repository.get(conn, unit_id)
    assert updated is not None
    return Updated(unit=updated, moved_account_ids=moved)


async def delete(conn: asyncpg.Connection, ctx: RequestContext, unit_id: int) -> None:
    unit = await unit_in_scope(conn, ctx, unit_id)
    if unit.path == ctx.caller.scope:
        raise Forbidden(
            "you cannot delete the unit your own scope hangs from",
            reason="own_scope_root",
            object_type="org_unit",
            object_id=unit_id,
        )
    if await repository.has_children(conn, unit_id):
        raise Conflict("the org unit has child units; move or delete them first")
    await repository.delete(conn, unit_id)
    await audit.record(conn, ctx, "org_unit.delete", object_type="org_unit", object_id=unit_id)
