"""Wire formats of the case routes."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

import msgspec

from casemgr.wire import Id, line


class Program(StrEnum):
    COMMUNITY_CORRECTIONS = "community_corrections"
    RELEASED_PRISONER = "released_prisoner"
    DRUG_REHAB = "drug_rehab"
    SEVERE_MENTAL_ILLNESS = "severe_mental_illness"


class CaseStatus(StrEnum):
    REFERRED = "referred"
    PENDING_INTAKE = "pending_intake"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


class PersonIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    full_name: Annotated[str, line(100)]
    sex: Sex
    birth_date: date
    id_number: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{17}[0-9X]$")] | None = None


class Person(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    full_name: str
    sex: Sex
    birth_date: date
    id_number: str | None


class CaseCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    person: PersonIn
    program: Program
    org_unit_id: Id
    # The responsible officer; an officer creating a case holds it themselves.
    officer_id: Id | None = None


class CaseUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    officer_id: Id | msgspec.UnsetType = msgspec.UNSET
    shared_with_police: bool | msgspec.UnsetType = msgspec.UNSET


class Case(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    program: Program
    status: CaseStatus
    org_unit_id: int
    officer_id: int
    shared_with_police: bool
    created_at: datetime
    person: Person


class CaseSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    program: Program
    status: CaseStatus
    org_unit_id: int
    officer_id: int
    person_id: int
    full_name: str


class CasePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[CaseSummary]
    next_after: int | None


class CaseLocation(msgspec.Struct, frozen=True, kw_only=True):
    """What the object-level check knows of a case before reading it (nothing personal)."""

    org_unit_id: int
    org_path: str
    officer_id: int
    program: Program
    shared_with_police: bool
