"""Wire formats of alerts and of the officers' inbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec


class AlertStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Severity(StrEnum):
    CRITICAL = "critical"
    SERIOUS = "serious"
    WARNING = "warning"
    INFO = "info"


class Outcome(StrEnum):
    CONFIRMED_VIOLATION = "confirmed_violation"
    DEVICE_FAULT = "device_fault"
    FALSE_ALARM = "false_alarm"
    AUTHORISED_ABSENCE = "authorised_absence"


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: str
    severity: str
    status: AlertStatus
    org_unit_id: int
    case_id: int | None
    handover_id: int | None
    task_id: int | None
    order_id: int | None = None
    raised_at: datetime
    # Ids and times only (device, zone, the fixes' sequence numbers), never a position.
    details: dict[str, Any]
    # When the device side of a tracking condition ended (the subject left the zone, ...).
    cleared_at: datetime | None = None
    acknowledged_by: int | None = None
    acknowledged_at: datetime | None = None
    resolved_by: int | None = None
    resolved_at: datetime | None = None
    outcome: Outcome | None = None
    resolution_note: str | None = None
    escalation_level: int = 0
    escalated_at: datetime | None = None
    escalated_to_unit_id: int | None = None
    # An authorised absence covered it: recorded, but it never escalates.
    covered_by_absence_id: int | None = None


class AlertPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Alert]
    next_after: int | None


class AlertCount(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    severity: str
    count: int


class AlertCounts(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    by_status_and_severity: list[AlertCount]


class Resolution(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    outcome: Outcome
    # Every resolution says what was found; for a strap tamper it is the officer's note the
    # law asks for before the condition may be closed.
    note: Annotated[str, msgspec.Meta(min_length=3, max_length=2000)]


class InboxFilter(msgspec.Struct, frozen=True, kw_only=True):
    """The inbox's filters, as the repository takes them (None: no filter)."""

    status: str | None = None
    kind: str | None = None
    severity: str | None = None
    include_unattached: bool = False
    program: str | None = None
    shared_only: bool = False
    raised_before: datetime | None = None
    escalated_to_unit_id: int | None = None
    officer_id: int | None = None
    case_id: int | None = None
