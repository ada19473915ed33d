"""Wire shapes of notification endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from casemgr.alerts.schemas import Severity
from casemgr.wire import Id


class EndpointCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    org_unit_id: Id
    channel: Literal["webhook", "sms"]
    # A webhook's https:// (or http:// on a private network) URL, or an SMS number.
    target: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]
    severities: Annotated[list[Severity], msgspec.Meta(min_length=1, max_length=4)] = msgspec.field(
        default_factory=lambda: [Severity.CRITICAL, Severity.SERIOUS]
    )


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    org_unit_id: int
    channel: Literal["webhook", "sms"]
    target: str
    severities: list[Severity]
    active: bool
    created_by: int
    created_at: datetime


class EndpointCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook's signing secret is shown here only; receivers check X-Casemgr-Signature with it."""

    endpoint: Endpoint
    secret: str | None


class BacklogRow(msgspec.Struct, frozen=True, kw_only=True):
    endpoint_id: int
    pending: int
    delivered: int
    dead: int
    oldest_pending_at: datetime | None


class DispatchReport(msgspec.Struct, frozen=True, kw_only=True):
    delivered: int = 0
    retried: int = 0
    dead: int = 0
