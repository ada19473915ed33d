"""What casemgr publishes to Redis for each device, and tracking reads: the contract between
the two halves. casemgr builds a DeviceConfig from PostgreSQL after every change to an order,
its zones or its device, and publishes it with a version taken from one database sequence;
tracking compiles it once per version and keeps the compiled form in memory.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Metres = Annotated[float, msgspec.Meta(ge=0, le=100_000)]


class CircleShape(msgspec.Struct, tag="circle", kw_only=True, frozen=True, forbid_unknown_fields=True):
    centre: tuple[float, float]  # [longitude, latitude], as GeoJSON orders them
    radius_m: Annotated[float, msgspec.Meta(gt=0, le=100_000)]


class PolygonShape(msgspec.Struct, tag="polygon", kw_only=True, frozen=True, forbid_unknown_fields=True):
    # The outer ring of a GeoJSON Polygon: [[lon, lat], ...] with the first position repeated last.
    ring: list[tuple[float, float]]


Shape = CircleShape | PolygonShape


class ScheduleWindow(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    days: list[int]
    start: str
    end: str


class ZoneSpec(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    kind: Literal["inclusion", "exclusion"]
    shape: Shape
    buffer_m: Metres = 0.0
    # No schedule: the zone always applies. With one, an inclusion zone applies inside its
    # windows (a curfew at home) and the subject must be inside by start + grace_minutes.
    schedule: list[ScheduleWindow] | None = None
    grace_minutes: int = 0


class Thresholds(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """How sure the state machine must be, and when the device conditions alert."""

    confirm_fixes: int = 2  # N consecutive fixes with the same evidence change a zone state ...
    confirm_seconds: int = 60  # ... or evidence held this long, whichever comes first
    max_accuracy_m: float = 250.0  # a fix less accurate than this is no position at all
    accuracy_cap_m: float = 100.0  # the band widens by the accuracy, up to this much
    low_battery_percent: int = 20
    critical_battery_percent: int = 5
    signal_buffer_seconds: int = 120  # no_signal: interval plus this without an upload
    location_unavailable_seconds: int = 300  # uploads without a valid fix for this long


class DeviceConfig(msgspec.Struct, kw_only=True, frozen=True):
    device_id: str
    version: int
    secret: bytes  # sealed (AES-GCM with its key id), associated data "device:<id>"
    interval_s: int
    order_id: int | None = None  # None: registered, but no active order: every upload is refused
    case_id: int | None = None
    org_unit_id: int | None = None
    starts_at_ms: int = 0
    ends_at_ms: int = 0
    time_zone: str = "Asia/Shanghai"
    zones: list[ZoneSpec] = []
    thresholds: Thresholds = Thresholds()


def secret_associated_data(device_id: str) -> bytes:
    return f"device:{device_id}".encode()
