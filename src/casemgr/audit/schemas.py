"""Wire formats of the audit routes."""

from __future__ import annotations

from datetime import datetime

import msgspec


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: datetime
    actor_id: int | None
    actor_role: str | None
    actor_org_unit_id: int | None
    action: str
    object_type: str | None
    object_id: str | None
    purpose: str | None
    outcome: str
    reason: str | None
    request_id: str | None
    hash: str


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[AuditEvent]
    # Pass as ?before= for the next (older) page; null on the last page.
    next_before: int | None


class AuditFilter(msgspec.Struct, frozen=True, kw_only=True):
    """What to look for in the trail; None means "any"."""

    actor_id: int | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    outcome: str | None = None
