"""Wire shapes of electronic monitoring: orders, renewals, devices and zones."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

import msgspec
from tracking.wire import DeviceId

Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Note = Annotated[str, msgspec.Meta(max_length=1000)]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
HourMinute = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]

MAX_ORDER_DAYS = 90


class OrderStatus(StrEnum):
    REQUESTED = "requested"
    ACTIVE = "active"
    REJECTED = "rejected"
    ENDED = "ended"


class MonitoringReason(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    label: str


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason_code: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z_]{1,40}$")]
    # The court decision or document the order rests on, by reference.
    legal_basis: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    assessment_ref: Reference
    starts_at: Instant
    ends_at: Instant
    # The subject's local time zone: curfew schedules are read in it.
    time_zone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "Asia/Shanghai"


class Decision(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    note: Note | None = None


class RenewalRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    assessment_ref: Reference
    new_ends_at: Instant


class EndRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class Renewal(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    order_id: int
    assessment_ref: str
    previous_ends_at: datetime
    new_ends_at: datetime
    status: Literal["requested", "approved", "rejected"]
    requested_by: int
    requested_at: datetime
    decided_by: int | None
    decided_at: datetime | None
    decision_note: str | None


class CircleIn(msgspec.Struct, tag="circle", frozen=True, kw_only=True, forbid_unknown_fields=True):
    centre: tuple[Longitude, Latitude]  # [longitude, latitude], the GeoJSON order
    radius_m: Annotated[float, msgspec.Meta(gt=0, le=50_000)]


class PolygonIn(msgspec.Struct, tag="Polygon", frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A GeoJSON Polygon with its outer ring only."""

    coordinates: Annotated[list[list[tuple[Longitude, Latitude]]], msgspec.Meta(min_length=1, max_length=1)]


class ScheduleWindowIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    days: Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=7)]], msgspec.Meta(min_length=1, max_length=7)]
    start: HourMinute
    end: HourMinute


class ZoneCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: Literal["inclusion", "exclusion"]
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    shape: CircleIn | PolygonIn
    buffer_m: Annotated[float, msgspec.Meta(ge=0, le=5000)] = 0.0
    # Absent: the zone applies at all times. Windows are read in the order's time zone.
    schedule: Annotated[list[ScheduleWindowIn], msgspec.Meta(min_length=1, max_length=14)] | None = None
    grace_minutes: Annotated[int, msgspec.Meta(ge=0, le=240)] = 0


class Zone(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    order_id: int
    kind: Literal["inclusion", "exclusion"]
    label: str
    shape: CircleIn | PolygonIn
    buffer_m: float
    schedule: list[ScheduleWindowIn] | None
    grace_minutes: int
    created_by: int
    created_at: datetime


class MonitoringOrder(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    case_id: int
    reason_code: str
    legal_basis: str
    assessment_ref: str
    status: OrderStatus
    # Active, started and not yet past its end: tracking runs.
    in_force: bool
    requested_by: int
    requested_at: datetime
    decided_by: int | None
    decided_at: datetime | None
    decision_note: str | None
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    ended_at: datetime | None
    end_reason: str | None
    device_id: str | None
    zones: list[Zone] = []
    renewals: list[Renewal] = []


class AbsenceCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Approved travel, a hospital stay: alerts about these zones in this window are recorded
    but covered (no escalation)."""

    zone_ids: Annotated[list[Annotated[int, msgspec.Meta(ge=1)]], msgspec.Meta(min_length=1, max_length=50)]
    starts_at: Instant
    ends_at: Instant
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=1000)]


class Absence(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    order_id: int
    zone_ids: list[int]
    starts_at: datetime
    ends_at: datetime
    reason: str
    granted_by: int
    granted_at: datetime
    revoked_by: int | None
    revoked_at: datetime | None


MAX_ABSENCE_DAYS = 31


class DeviceCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: DeviceId
    org_unit_id: int
    reporting_interval_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 60


class Device(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    org_unit_id: int
    reporting_interval_s: int
    registered_at: datetime
    retired_at: datetime | None
    order_id: int | None


class DeviceCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """Shown once, at registration or rotation; only its sealed form is stored."""

    device: Device
    secret: str


class Assignment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    device_id: DeviceId


class TrackPoint(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One fix of the track: [time, longitude, latitude, accuracy in metres]."""

    at: datetime
    longitude: float
    latitude: float
    accuracy_m: float | None


class CaseMap(msgspec.Struct, frozen=True, kw_only=True):
    """What a map of a subject shows: the zones of the order in force (else of the latest
    order) and the fixes of the last `hours`, oldest first."""

    case_id: int
    order_id: int | None
    hours: int
    zones: list[Zone]
    track: list[TrackPoint]
