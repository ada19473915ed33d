"""The device simulator's virtual devices: where they go, and what they send."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from tracking.simulator import VirtualDevice, _metres

from casemgr.monitoring.demo import DemoDevice

SPEC = DemoDevice(
    device_id="DEMO-EM-0001",
    secret="s",
    order_id=1,
    home=(121.47, 31.23),
    home_radius_m=80,
    keep_away=(121.4857, 31.23),
    keep_away_radius_m=150,
    interval_s=30,
)
NOON = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
MIDNIGHT = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # 00:00 in Shanghai, curfew


def distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(*_metres(a, b))


def run(device: VirtualDevice, start: datetime, minutes: int) -> list[tuple[float, float]]:
    track = []
    for step in range(minutes * 12):
        device.step(5.0, start + timedelta(seconds=5 * step))
        track.append(device.position)
    return track


def test_a_rule_abiding_device_roams_near_home_never_into_the_zone_and_is_home_at_night() -> None:
    device = VirtualDevice(SPEC, random.Random(1))
    track = run(device, NOON, 120)
    assert max(distance(SPEC.home, p) for p in track) <= 1000
    assert min(distance(SPEC.keep_away, p) for p in track) > SPEC.keep_away_radius_m
    device.target = device._choose_target(MIDNIGHT)
    run(device, MIDNIGHT, 30)
    assert distance(SPEC.home, device.position) < 1.0


def test_a_device_sent_into_its_exclusion_zone_gets_there_within_minutes() -> None:
    device = VirtualDevice(SPEC, random.Random(2), mode="enter_zone")
    device.target = device._choose_target(NOON)
    run(device, NOON, 4)
    assert distance(SPEC.keep_away, device.position) < SPEC.keep_away_radius_m


def test_fixes_carry_increasing_sequence_numbers_noise_and_the_strap_state() -> None:
    device = VirtualDevice(SPEC, random.Random(3), mode="cut_strap")
    fixes = [device.fix(NOON + timedelta(seconds=i)) for i in range(50)]
    assert [f["seq"] for f in fixes] == list(range(1, 51))
    offsets = [distance(SPEC.home, (f["longitude"], f["latitude"])) for f in fixes]
    assert 0 < max(offsets) < 60  # metres of GPS noise around a device standing still
    assert {f["strap_state"] for f in fixes} == {"cut"}
