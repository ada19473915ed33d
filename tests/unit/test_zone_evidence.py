"""The evidence one fix gives about each zone: the inline hot path agrees with the plain one."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from tracking.contract import CircleShape, DeviceConfig, PolygonShape, ScheduleWindow, ZoneSpec
from tracking.zones import CompiledDevice

LON, LAT = 121.47, 31.23
SQUARE = [
    (LON - 0.002, LAT - 0.002),
    (LON + 0.002, LAT - 0.002),
    (LON + 0.002, LAT + 0.002),
    (LON - 0.002, LAT + 0.002),
]
ZONES = [
    ZoneSpec(id=1, kind="exclusion", shape=CircleShape(centre=(LON, LAT), radius_m=120), buffer_m=20),
    ZoneSpec(
        id=2,
        kind="inclusion",
        shape=CircleShape(centre=(LON + 0.001, LAT), radius_m=300),
        buffer_m=30,
        schedule=[ScheduleWindow(days=[1, 2, 3, 4, 5], start="21:00", end="06:00")],
        grace_minutes=10,
    ),
    ZoneSpec(id=3, kind="exclusion", shape=PolygonShape(ring=[*SQUARE, SQUARE[0]]), buffer_m=10),
]
CONFIG = DeviceConfig(device_id="d", version=1, secret=b"", interval_s=60, zones=ZONES)


def device() -> CompiledDevice:
    return CompiledDevice.of(CONFIG, b"")


@settings(max_examples=500)
@given(
    st.floats(-0.01, 0.01),
    st.floats(-0.01, 0.01),
    st.floats(0, 300),
    st.integers(1_790_000_000_000, 1_800_000_000_000),
)
def test_the_inline_evidence_agrees_with_each_zones_own(
    dlon: float, dlat: float, accuracy: float, t_ms: int
) -> None:
    compiled = device()
    marks = compiled.evidence(LON + dlon, LAT + dlat, accuracy, t_ms)
    if accuracy > compiled.thresholds.max_accuracy_m:
        assert marks is None
        return
    cap = compiled.thresholds.accuracy_cap_m
    assert marks == "".join(z.evidence(LON + dlon, LAT + dlat, accuracy, t_ms, cap) for z in compiled.zones)


def test_a_fix_without_a_position_gives_no_evidence() -> None:
    assert device().evidence(None, None, 5.0, 1_790_000_000_000) is None


def test_a_fix_at_the_centre_of_an_exclusion_zone_outside_curfew_hours() -> None:
    # 2026-11-25 12:00 Shanghai, a Wednesday: the home zone (2) is not in force (lower case).
    marks = device().evidence(LON, LAT, 5.0, 1_795_579_200_000)
    assert marks == "Ii" + "I"


def test_devices_alike_share_their_thresholds_and_exclusion_places() -> None:
    # A worker holds a million devices: what they hold alike is kept once, in the CPU's caches.
    first, second = device(), CompiledDevice.of(msgspec.structs.replace(CONFIG, device_id="e"), b"")
    assert first.thresholds is second.thresholds
    assert first.exclusion is second.exclusion
    assert first.exclusion == (0, 2)  # zones 1 and 3, in evidence order


def test_zones_alike_share_their_radius_and_buffer_and_keep_their_types() -> None:
    at_home = ZoneSpec(
        id=7,
        kind="inclusion",
        shape=CircleShape(centre=(LON, LAT), radius_m=60_000.0),
        buffer_m=30,
        schedule=[ScheduleWindow(days=[1], start="21:00", end="06:00")],
        grace_minutes=1,  # 60,000 ms: equal to the radius in metres, an int all the same
    )
    first, second = (
        CompiledDevice.of(msgspec.structs.replace(CONFIG, device_id=d, zones=[at_home]), b"").zones[0]
        for d in ("d", "e")
    )
    assert first.buffer_m is second.buffer_m
    assert first.shape.radius_m is second.shape.radius_m
    assert type(first.shape.radius_m) is float and first.shape.radius_m == 60_000.0
    assert type(first.grace_ms) is int and first.grace_ms == 60_000
