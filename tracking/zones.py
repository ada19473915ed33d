"""A device's compiled zone set and the evidence one fix gives about each zone.

Evidence per zone is one character: "I" (the fix is inside the drawn shape), "O" (outside by
more than the band: the zone's buffer plus the fix's accuracy), "-" (in the band, which says
nothing). Lower case means the zone does not apply at the fix's time (outside its schedule):
the state still follows the subject, but leaving raises nothing. The state machine in Redis
turns a run of evidence into state changes; this module never keeps state.

The band lies outside the drawn boundary, so an officer draws the zone as the line that
matters: a subject is "in" once a fix falls inside it, and "out" again only once clearly
beyond the band. For an exclusion zone that errs to the protected person's side.
"""

from __future__ import annotations

import math
from typing import TypeVar

import msgspec

from tracking.contract import CircleShape, DeviceConfig, Thresholds, ZoneSpec
from tracking.geometry import Circle, CompiledCircle, CompiledPolygon
from tracking.schedule import CompiledSchedule, Window, parse_time_zone


class CompiledZone(msgspec.Struct, frozen=True, gc=False):
    id: int
    exclusion: bool
    shape: CompiledCircle | CompiledPolygon
    buffer_m: float
    grace_ms: int
    schedule: CompiledSchedule | None

    def evidence(self, lon: float, lat: float, accuracy_m: float, t_ms: int, cap_m: float) -> str:
        band = self.buffer_m + (accuracy_m if accuracy_m < cap_m else cap_m)
        if isinstance(self.shape, CompiledCircle):
            distance = self.shape.signed_distance(lon, lat)
        else:
            distance = self.shape.signed_distance(lon, lat, beyond=band)
        mark = "I" if distance <= 0.0 else ("O" if distance > band else "-")
        if self.schedule is not None and not self.schedule.active_at(t_ms):
            return mark.lower()
        return mark


# Compiled schedules, shared: most subjects of a city keep the same few curfews, and a schedule
# costs tens of microseconds to lay out over its horizon.
_SCHEDULES: dict[tuple[str, tuple[Window, ...]], CompiledSchedule] = {}
_MAX_SCHEDULES = 10_000


def shared_schedule(windows: tuple[Window, ...], time_zone: str) -> CompiledSchedule:
    key = (time_zone, windows)
    schedule = _SCHEDULES.get(key)
    if schedule is None:
        if len(_SCHEDULES) >= _MAX_SCHEDULES:
            _SCHEDULES.clear()
        schedule = _SCHEDULES[key] = CompiledSchedule(windows, parse_time_zone(time_zone))
    return schedule


# Values that many devices' configurations hold alike (the thresholds, where the exclusion zones
# are, the few round numbers officers choose radii and buffers from), kept once per worker: a
# worker holds a million devices, and a shared value is in the CPU's caches where each device's
# own copy of it would be a cache miss on every upload, and memory. Keyed by type as well, as
# 150 and 150.0 are equal.
_SHARED: dict[tuple[type, object], object] = {}
_MAX_SHARED = 10_000
_Value = TypeVar("_Value")


def _shared(value: _Value) -> _Value:
    if len(_SHARED) >= _MAX_SHARED:
        _SHARED.clear()
    return _SHARED.setdefault((type(value), value), value)  # type: ignore[return-value]


def compile_zone(spec: ZoneSpec, time_zone: str) -> CompiledZone:
    """Compile a zone published by casemgr (its shape validated when it was saved)."""
    shape = spec.shape
    compiled = (
        Circle(shape.centre, _shared(shape.radius_m)).compile()
        if isinstance(shape, CircleShape)
        else CompiledPolygon.from_ring(shape.ring)
    )
    schedule = None
    if spec.schedule:
        schedule = shared_schedule(
            tuple(Window(tuple(w.days), w.start, w.end) for w in spec.schedule), time_zone
        )
    return CompiledZone(
        spec.id,
        spec.kind == "exclusion",
        compiled,
        _shared(spec.buffer_m),
        _shared(spec.grace_minutes * 60_000),
        schedule,
    )


class CompiledDevice(msgspec.Struct, frozen=True, gc=False):
    """Everything the ingest path needs about one device, for one configuration version; no
    more (the ingest keeps one per device it serves)."""

    version: int
    order_id: int | None
    starts_at_ms: int
    ends_at_ms: int
    secret: bytes
    zones: tuple[CompiledZone, ...]
    thresholds: Thresholds
    # The places in `zones` (and in each evidence string) of the exclusion zones: what the
    # crossing check walks, found once per version rather than on every upload.
    exclusion: tuple[int, ...]

    @classmethod
    def of(cls, config: DeviceConfig, secret: bytes) -> CompiledDevice:
        zones = tuple(compile_zone(z, config.time_zone) for z in config.zones)
        return cls(
            version=config.version,
            order_id=config.order_id,
            starts_at_ms=config.starts_at_ms,
            ends_at_ms=config.ends_at_ms,
            secret=secret,
            zones=zones,
            thresholds=_shared(config.thresholds),
            exclusion=_shared(tuple(i for i, zone in enumerate(zones) if zone.exclusion)),
        )

    def evidence(self, lon: float | None, lat: float | None, accuracy_m: float, t_ms: int) -> str | None:
        """One character per zone, in the order of config.zones; None for no valid position.

        The hot path of ingest (every fix, every zone): circles are measured inline, with the
        projection's constants at hand, rather than through CompiledZone.evidence (which it
        must agree with, and a property test holds it to)."""
        thresholds = self.thresholds
        if lon is None or lat is None or accuracy_m > thresholds.max_accuracy_m:
            return None
        cap = thresholds.accuracy_cap_m
        accuracy = accuracy_m if accuracy_m < cap else cap
        marks = ""
        for zone in self.zones:
            shape = zone.shape
            band = zone.buffer_m + accuracy
            if isinstance(shape, CompiledCircle):
                projection = shape.projection
                dx = (lon - projection.lon0) * projection.kx
                dy = (lat - projection.lat0) * projection.ky
                distance = math.sqrt(dx * dx + dy * dy) - shape.radius_m
            else:
                distance = shape.signed_distance(lon, lat, beyond=band)
            mark = "I" if distance <= 0.0 else ("O" if distance > band else "-")
            if zone.schedule is not None and not zone.schedule.active_at(t_ms):
                mark = mark.lower()
            marks += mark
        return marks


def zone_layout(config: DeviceConfig) -> str:
    """What the Redis script needs to know of the zones, in evidence order: "id:x" for an
    exclusion zone, "id:i" for an inclusion zone always in force, "id:c" for one with a
    schedule (a curfew)."""
    return ",".join(
        f"{z.id}:{'x' if z.kind == 'exclusion' else ('c' if z.schedule else 'i')}" for z in config.zones
    )
