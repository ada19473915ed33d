"""Wire shapes of enforcement."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from casemgr.wire import Id

Note = Annotated[str, msgspec.Meta(min_length=3, max_length=2000)]


class EnforcementCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: Literal["warning", "revocation_proposal"]
    note: Note
    # The confirmed alert it rests on.
    alert_id: Id | None = None


class Rejection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    note: Note


class Enforcement(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    case_id: int
    alert_id: int | None
    kind: Literal["warning", "revocation_proposal"]
    status: Literal["issued", "proposed", "office_signed", "approved", "rejected"]
    note: str
    created_by: int
    created_at: datetime
    office_signed_by: int | None
    office_signed_at: datetime | None
    district_signed_by: int | None
    district_signed_at: datetime | None
    rejected_by: int | None
    rejected_at: datetime | None
    rejection_note: str | None
