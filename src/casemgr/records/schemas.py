"""Wire formats of assistance and records: service referrals, notes, documents."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec

from casemgr.wire import line


class Service(StrEnum):
    EMPLOYMENT = "employment"
    HOUSING = "housing"
    TRAINING = "training"
    BENEFITS = "benefits"
    MEDICAL = "medical"
    LEGAL_AID = "legal_aid"


class ReferralStatus(StrEnum):
    PROPOSED = "proposed"
    REFERRED = "referred"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    DECLINED = "declined"
    CANCELLED = "cancelled"


# Where a service referral may go next; completed, declined and cancelled are final.
NEXT_STATUS: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    ReferralStatus.PROPOSED: frozenset({ReferralStatus.REFERRED, ReferralStatus.CANCELLED}),
    ReferralStatus.REFERRED: frozenset(
        {ReferralStatus.ACCEPTED, ReferralStatus.DECLINED, ReferralStatus.CANCELLED}
    ),
    ReferralStatus.ACCEPTED: frozenset(
        {ReferralStatus.IN_PROGRESS, ReferralStatus.COMPLETED, ReferralStatus.CANCELLED}
    ),
    ReferralStatus.IN_PROGRESS: frozenset({ReferralStatus.COMPLETED, ReferralStatus.CANCELLED}),
    ReferralStatus.COMPLETED: frozenset(),
    ReferralStatus.DECLINED: frozenset(),
    ReferralStatus.CANCELLED: frozenset(),
}

Note = Annotated[str, msgspec.Meta(max_length=2000)]


class ServiceReferralCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    service: Service
    provider: Annotated[str, line(200)]
    note: Note | None = None


class ServiceReferralUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: ReferralStatus
    note: Note | None = None


class ServiceReferral(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    case_id: int
    service: Service
    provider: str
    status: ReferralStatus
    note: str | None
    created_by: int
    created_at: datetime
    updated_at: datetime


class NoteCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=10000)]


class CaseNote(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    case_id: int
    body: str
    created_by: int
    created_at: datetime


class Document(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    case_id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    created_by: int
    created_at: datetime
