"""Zone geometry and schedules, pure and exact: no I/O."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tracking.geometry import (
    MAX_POLYGON_VERTICES,
    Circle,
    Polygon,
    ShapeError,
    segments_intersect,
    validate_ring,
)
from tracking.schedule import CompiledSchedule, ScheduleError, Window

LON, LAT = 121.47, 31.23
M_PER_DEG_LAT = 111_195.08
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT))


def east(m: float, north: float = 0.0) -> tuple[float, float]:
    return LON + m / M_PER_DEG_LON, LAT + north / M_PER_DEG_LAT


def square(half_m: float) -> Polygon:
    corners = [east(-half_m, -half_m), east(half_m, -half_m), east(half_m, half_m), east(-half_m, half_m)]
    return Polygon((*corners, corners[0]))


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def test_a_circle_measures_metres_from_its_boundary() -> None:
    zone = Circle((LON, LAT), 100.0).compile()
    assert zone.signed_distance(LON, LAT) == pytest.approx(-100.0)
    assert zone.signed_distance(*east(250)) == pytest.approx(150.0, abs=0.01)
    assert zone.signed_distance(*east(0, -60)) == pytest.approx(-40.0, abs=0.01)


@settings(max_examples=200)
@given(st.floats(-5000, 5000), st.floats(-5000, 5000), st.floats(1, 3000))
def test_circle_distance_agrees_with_great_circle_distance_within_half_a_percent(
    x: float, y: float, radius: float
) -> None:
    zone = Circle((LON, LAT), radius).compile()
    point = east(x, y)
    expected = haversine_m((LON, LAT), point) - radius
    assert zone.signed_distance(*point) == pytest.approx(expected, rel=0.005, abs=0.5)


def test_a_polygon_knows_inside_outside_and_the_distance_to_its_nearest_edge() -> None:
    zone = square(100).compile()
    assert zone.signed_distance(LON, LAT) == pytest.approx(-100.0, abs=0.01)
    assert zone.signed_distance(*east(60, 0)) == pytest.approx(-40.0, abs=0.01)
    assert zone.signed_distance(*east(130, 0)) == pytest.approx(30.0, abs=0.01)
    assert zone.signed_distance(*east(130, 140)) == pytest.approx(50.0, abs=0.01)  # nearest: a corner


def test_a_point_far_beyond_the_band_is_answered_from_the_bounding_box() -> None:
    zone = square(100).compile()
    assert zone.signed_distance(*east(5000), beyond=50.0) == pytest.approx(4900.0, abs=1)


@settings(max_examples=300)
@given(st.floats(-400, 400), st.floats(-400, 400), st.floats(10, 300))
def test_polygon_distance_matches_the_exact_distance_to_a_square(x: float, y: float, half: float) -> None:
    zone = square(half).compile()
    dx, dy = abs(x) - half, abs(y) - half
    exact = math.hypot(max(dx, 0), max(dy, 0)) + min(max(dx, dy), 0)
    assert zone.signed_distance(*east(x, y)) == pytest.approx(exact, abs=0.05)


def test_a_path_crossing_a_zone_between_two_fixes_is_found_and_a_path_beside_it_is_not() -> None:
    for zone in (Circle((LON, LAT), 40).compile(), square(40).compile()):
        assert zone.segment_enters(east(-500), east(500))
        assert zone.segment_enters(east(-500, 30), east(500, 30))
        assert not zone.segment_enters(east(-500, 80), east(500, 80))
        assert not zone.segment_enters(east(-500), east(-100))


@given(st.tuples(*[st.floats(-300, 300)] * 4))
def test_crossing_does_not_depend_on_the_direction_of_travel(
    coords: tuple[float, float, float, float],
) -> None:
    zone = square(50).compile()
    a, b = east(coords[0], coords[1]), east(coords[2], coords[3])
    assert zone.segment_enters(a, b) == zone.segment_enters(b, a)


def test_segment_intersection_exact_cases() -> None:
    assert segments_intersect((0, 0), (2, 2), (0, 2), (2, 0))  # an X
    assert segments_intersect((0, 0), (2, 0), (2, 0), (3, 1))  # touching at an end
    assert segments_intersect((0, 0), (3, 0), (1, 0), (2, 0))  # collinear, overlapping
    assert not segments_intersect((0, 0), (1, 0), (2, 0), (3, 0))  # collinear, apart
    assert not segments_intersect((0, 0), (2, 0), (0, 1), (2, 1))  # parallel


@pytest.mark.parametrize(
    ("ring", "message"),
    [
        ([(0, 0), (1, 0), (0, 0)], "at least 4 positions"),
        ([(0, 0), (0.01, 0), (0.01, 0.01), (0, 0.011)], "not closed"),
        ([(0, 0), (0.02, 0.01), (0.02, 0), (0, 0.02), (0, 0)], "intersects itself"),
        ([(0, 0), (0.01, 0), (0.01, 0), (0, 0.01), (0, 0)], "the same position"),
        ([(0, 0), (0.01, 0), (0.02, 0), (0, 0)], "no area"),
        ([(0, 0), (181, 0), (0, 1), (0, 0)], "longitude"),
    ],
)
def test_a_ring_that_cannot_be_a_zone_is_refused_with_the_rule_it_breaks(
    ring: list[tuple[float, float]], message: str
) -> None:
    with pytest.raises(ShapeError, match=message):
        validate_ring(ring)


def test_a_ring_of_500_vertices_is_allowed_and_of_501_refused() -> None:
    def regular(n: int) -> list[tuple[float, float]]:
        points = [
            (LON + 0.01 * math.cos(2 * math.pi * i / n), LAT + 0.01 * math.sin(2 * math.pi * i / n))
            for i in range(n)
        ]
        return [*points, points[0]]

    validate_ring(regular(MAX_POLYGON_VERTICES))
    with pytest.raises(ShapeError, match="at most 500"):
        validate_ring(regular(MAX_POLYGON_VERTICES + 1))


def ms(text: str, zone: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def test_an_overnight_curfew_runs_past_midnight_in_local_time() -> None:
    shanghai = "Asia/Shanghai"
    curfew = CompiledSchedule((Window((1, 2, 3, 4, 5), "21:00", "06:00"),), ZoneInfo(shanghai))
    assert curfew.active_at(ms("2026-11-23T22:00", shanghai))  # Monday night
    assert curfew.active_at(ms("2026-11-24T05:59", shanghai))  # into Tuesday morning
    assert not curfew.active_at(ms("2026-11-24T06:00", shanghai))
    assert not curfew.active_at(ms("2026-11-24T12:00", shanghai))
    assert curfew.active_at(ms("2026-11-29T03:00", shanghai)) is False  # Saturday night is free
    assert curfew.next_start_after(ms("2026-11-24T12:00", shanghai)) == ms("2026-11-24T21:00", shanghai)
    assert curfew.next_end_after(ms("2026-11-24T22:00", shanghai)) == ms("2026-11-25T06:00", shanghai)


def test_a_curfew_follows_the_wall_clock_across_a_daylight_saving_change() -> None:
    new_york = "America/New_York"
    curfew = CompiledSchedule((Window((1, 2, 3, 4, 5, 6, 7), "22:00", "06:00"),), ZoneInfo(new_york))
    before = curfew.next_start_after(ms("2026-10-31T12:00", new_york))  # EDT, UTC-4
    after = curfew.next_start_after(ms("2026-11-01T12:00", new_york))  # EST, UTC-5
    assert before == ms("2026-10-31T22:00", new_york)
    assert after == ms("2026-11-01T22:00", new_york)
    assert after - before == 25 * 3_600_000


def test_a_window_with_a_bad_day_or_time_is_refused() -> None:
    with pytest.raises(ScheduleError, match="weekdays"):
        Window((0,), "21:00", "06:00")
    with pytest.raises(ScheduleError, match="HH:MM"):
        Window((1,), "25:00", "06:00")
