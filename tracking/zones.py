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
from array import array

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


def compile_zone(spec: ZoneSpec, time_zone: str) -> CompiledZone:
    """Compile a zone published by casemgr (its shape validated when it was saved)."""
    shape = spec.shape
    compiled = (
        Circle(shape.centre, shape.radius_m).compile()
        if isinstance(shape, CircleShape)
        else CompiledPolygon.from_ring(shape.ring)
    )
    schedule = None
    if spec.schedule:
        schedule = shared_schedule(
            tuple(Window(tuple(w.days), w.start, w.end) for w in spec.schedule), time_zone
        )
    return CompiledZone(
        spec.id, spec.kind == "exclusion", compiled, spec.buffer_m, spec.grace_minutes * 60_000, schedule
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
    # The exclusion zones with their places in `zones` (and in each evidence string): what the
    # crossing check walks, found once per version rather than on every upload.
    exclusion: tuple[tuple[int, CompiledZone], ...]
    # What evidence() reads when every zone is a circle (most subjects' are), in one array: per
    # zone the projection's lon0, lat0, kx and ky, the radius and the buffer. Among a million
    # devices each upload's reads of its device are cache misses, and five zones' structs and
    # their floats were some seventy objects (an ad hoc A/B at 500,000 subjects: 44.9 against
    # 46.8 us of worker CPU per upload). None when a zone is a polygon.
    circles: array[float] | None
    # The zones' schedules, in order: shared objects (shared_schedule), read through one tuple.
    schedules: tuple[CompiledSchedule | None, ...]

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
            thresholds=config.thresholds,
            exclusion=tuple((i, zone) for i, zone in enumerate(zones) if zone.exclusion),
            circles=_circles(zones),
            schedules=tuple(zone.schedule for zone in zones),
        )

    def evidence(self, lon: float | None, lat: float | None, accuracy_m: float, t_ms: int) -> str | None:
        """One character per zone, in the order of config.zones; None for no valid position.

        The hot path of ingest (every fix, every zone): circles are measured inline from the
        packed array rather than through CompiledZone.evidence (which it must agree with, and a
        property test holds it to)."""
        thresholds = self.thresholds
        if lon is None or lat is None or accuracy_m > thresholds.max_accuracy_m:
            return None
        cap = thresholds.accuracy_cap_m
        circles = self.circles
        if circles is None:
            return "".join(zone.evidence(lon, lat, accuracy_m, t_ms, cap) for zone in self.zones)
        accuracy = accuracy_m if accuracy_m < cap else cap
        marks = ""
        at = 0
        for schedule in self.schedules:
            dx = (lon - circles[at]) * circles[at + 2]
            dy = (lat - circles[at + 1]) * circles[at + 3]
            distance = math.sqrt(dx * dx + dy * dy) - circles[at + 4]
            band = circles[at + 5] + accuracy
            mark = "I" if distance <= 0.0 else ("O" if distance > band else "-")
            if schedule is not None and not schedule.active_at(t_ms):
                mark = mark.lower()
            marks += mark
            at += 6
        return marks


def _circles(zones: tuple[CompiledZone, ...]) -> array[float] | None:
    values: list[float] = []
    for zone in zones:
        shape = zone.shape
        if not isinstance(shape, CompiledCircle):
            return None
        p = shape.projection
        values += (p.lon0, p.lat0, p.kx, p.ky, shape.radius_m, zone.buffer_m)
    return array("d", values)


def zone_layout(config: DeviceConfig) -> str:
    """What the Redis script needs to know of the zones, in evidence order: "id:x" for an
    exclusion zone, "id:i" for an inclusion zone always in force, "id:c" for one with a
    schedule (a curfew)."""
    return ",".join(
        f"{z.id}:{'x' if z.kind == 'exclusion' else ('c' if z.schedule else 'i')}" for z in config.zones
    )
