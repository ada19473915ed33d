"""Wire formats of handovers: referrals from institutions and transfers between offices."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

from casemgr.cases.programs import ProgramDetail
from casemgr.cases.schemas import Program
from casemgr.people.schemas import PersonCreate
from casemgr.wire import Id, line

Note = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class HandoverStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ReferralCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A prison, court or hospital announces a person the receiving office must take on."""

    source: Literal["prison", "court", "hospital"]
    source_name: Annotated[str, line(200)]
    target_org_unit_id: Id
    program: Program
    person: PersonCreate
    detail: ProgramDetail | None = None
    # The day the judgment took effect, the release or the discharge: the intake deadline
    # counts from it (see /handovers/intake-deadlines). Without it, give the deadline itself.
    anchor_date: date | None = None
    deadline: datetime | None = None
    note: Note | None = None


class TransferCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    target_org_unit_id: Id
    note: Note
    # Until when the receiving office has to decide (default: ten days from now).
    deadline: datetime | None = None


class Acceptance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The responsible officer in the receiving office (an officer accepting takes it on).
    officer_id: Id | None = None
    # Open the case for a person registered already, when the referral's person is a duplicate.
    person_id: Id | None = None
    note: Note | None = None


class Rejection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    note: Note


class Handover(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    source: str
    source_name: str | None
    source_org_unit_id: int | None
    target_org_unit_id: int
    program: Program
    case_id: int | None
    intake_case_id: int | None
    person: dict[str, Any] | None
    anchor_date: date | None
    deadline: datetime
    status: HandoverStatus
    note: str | None
    decided_by: int | None
    decided_at: datetime | None
    decision_note: str | None
    created_by: int
    created_at: datetime


class HandoverPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Handover]
    next_after: int | None


class IntakeDeadline(msgspec.Struct, frozen=True, kw_only=True):
    program: Program
    anchor: str
    days_after: int
