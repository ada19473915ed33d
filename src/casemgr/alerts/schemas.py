"""Wire formats of alerts (the officers' inbox builds on these)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec


class AlertStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: str
    severity: str
    status: AlertStatus
    org_unit_id: int
    case_id: int | None
    handover_id: int | None
    task_id: int | None
    raised_at: datetime
    details: dict[str, Any]


class AlertPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Alert]
    next_after: int | None
