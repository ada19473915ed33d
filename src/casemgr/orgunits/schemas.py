"""Wire formats of the org-unit routes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec

from casemgr.wire import Id, line

Name = Annotated[str, line(200)]
Code = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class OrgUnitKind(StrEnum):
    CITY = "city"
    DISTRICT = "district"
    OFFICE = "office"
    COMMUNITY = "community"
    GRID = "grid"

    @property
    def rank(self) -> int:
        return list(OrgUnitKind).index(self)


class OrgUnit(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    parent_id: int | None
    kind: OrgUnitKind
    name: str
    code: str
    path: str


class OrgUnitCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    parent_id: Id
    kind: OrgUnitKind
    name: Name
    code: Code


class OrgUnitUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    # Moving a unit moves its whole subtree, with the accounts and cases in it.
    parent_id: Id | msgspec.UnsetType = msgspec.UNSET
