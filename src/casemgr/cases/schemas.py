"""Wire formats of the case routes."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

import msgspec

from casemgr.cases.programs import ProgramDetail
from casemgr.people.schemas import PersonCreate, Sex
from casemgr.wire import Id


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


class ClosureReason(StrEnum):
    TERM_EXPIRED = "term_expired"
    REVOKED = "revoked"
    TRANSFERRED_OUT = "transferred_out"
    DIED = "died"
    MOVED_AWAY = "moved_away"
    OTHER = "other"


class SupervisionLevel(StrEnum):
    STRICT = "strict"
    ORDINARY = "ordinary"
    RELAXED = "relaxed"


Note = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class CaseCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Open a case for a registered person (person_id) or for one registered with it (person)."""

    program: Program
    org_unit_id: Id
    person_id: Id | None = None
    person: PersonCreate | None = None
    # The responsible officer; an officer opening a case holds it themselves.
    officer_id: Id | None = None
    supervision_level: SupervisionLevel = SupervisionLevel.ORDINARY
    status: CaseStatus = CaseStatus.PENDING_INTAKE
    detail: ProgramDetail | None = None


class CaseUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    officer_id: Id | msgspec.UnsetType = msgspec.UNSET
    shared_with_police: bool | msgspec.UnsetType = msgspec.UNSET
    supervision_level: SupervisionLevel | msgspec.UnsetType = msgspec.UNSET
    # Why the level or the officer changed; kept in the case's events.
    note: Note | msgspec.UnsetType = msgspec.UNSET


class Transition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    to: CaseStatus
    note: Note
    closure_reason: ClosureReason | None = None


class CasePerson(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    full_name: str
    sex: Sex
    birth_date: date
    id_number: str | None


class Case(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    program: Program
    status: CaseStatus
    supervision_level: SupervisionLevel
    org_unit_id: int
    officer_id: int
    shared_with_police: bool
    closure_reason: ClosureReason | None
    activated_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    person: CasePerson
    # Without the sensitive fields unless the caller is cleared for them.
    detail: ProgramDetail | None


class CaseEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: datetime
    actor_id: int | None
    kind: str
    from_status: CaseStatus | None
    to_status: CaseStatus | None
    note: str | None


class CaseSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    program: Program
    status: CaseStatus
    supervision_level: SupervisionLevel
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
