"""Wire formats of supervision: contact plan, contacts and tasks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec

from casemgr.cases.schemas import Program


class ContactKind(StrEnum):
    HOME_VISIT = "home_visit"
    OFFICE_REPORT = "office_report"
    PHONE = "phone"
    VIDEO = "video"


class ContactOutcome(StrEnum):
    ATTENDED = "attended"
    COMPLIED = "complied"
    ABSENT_WITH_REASON = "absent_with_reason"
    ABSENT_WITHOUT_REASON = "absent_without_reason"

    @property
    def achieved(self) -> bool:
        """Whether the contact took place (an absence does not meet the plan)."""
        return self in (ContactOutcome.ATTENDED, ContactOutcome.COMPLIED)


class TaskKind(StrEnum):
    CONTACT_DUE = "contact_due"
    ASSESSMENT_DUE = "assessment_due"
    REVIEW_DUE = "review_due"
    PICKUP = "pickup"
    INTAKE_DUE = "intake_due"


class TaskState(StrEnum):
    """Which tasks to list: open ones, those past due, those escalated."""

    OPEN = "open"
    OVERDUE = "overdue"
    ESCALATED = "escalated"
    DONE = "done"


class PlanRule(msgspec.Struct, frozen=True, kw_only=True):
    program: Program
    band: str
    interval_days: int


class PlanRuleUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    program: Program
    band: Annotated[str, msgspec.Meta(pattern=r"^(strict|ordinary|relaxed|risk_[0-5])$")]
    interval_days: Annotated[int, msgspec.Meta(ge=1, le=366)]


class ContactIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: ContactKind
    outcome: ContactOutcome
    occurred_at: datetime
    note: Annotated[str, msgspec.Meta(max_length=4000)] | None = None


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    case_id: int
    kind: ContactKind
    outcome: ContactOutcome
    occurred_at: datetime
    note: str | None
    recorded_by: int
    recorded_at: datetime


class Task(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    case_id: int
    kind: TaskKind
    status: str
    due_at: datetime
    overdue_at: datetime | None
    escalated_at: datetime | None
    escalated_to: int | None
    completed_at: datetime | None
    officer_id: int
    org_unit_id: int
    program: Program


class TaskPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Task]
    next_after: int | None


class TaskCompletion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class EngineReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one run of the due-task engine did."""

    created: int = 0
    cancelled: int = 0
    overdue: int = 0
    escalated: int = 0
    # Missed intakes and overdue tasks raised as alerts.
    alerts: int = 0
