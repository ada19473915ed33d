"""Properties of the zone state machine, checked by hypothesis against the real Redis script."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tracking.contract import Thresholds

from tests.tracking.conftest import Rig, now_ms
from tests.tracking.test_alerts import at, circle

RADIUS, BUFFER = 100.0, 20.0
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    st.lists(
        # Distance east of the centre, and accuracy: every fix lies outside the drawn circle
        # but inside the band (buffer plus accuracy) around it.
        st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 50.0)),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from(["exclusion", "inclusion"]),
)
async def test_a_trace_that_stays_within_the_buffer_band_never_changes_state(
    rig: Rig, trace: list[tuple[float, float]], kind: str
) -> None:
    device = await rig.device([circle(1, kind, radius_m=RADIUS, buffer_m=BUFFER)], thresholds=Thresholds())
    t0 = now_ms() - 3_600_000
    pings = []
    for i, (fraction, accuracy) in enumerate(trace):
        distance = RADIUS + 0.5 + fraction * (BUFFER + accuracy - 1.0)
        pings.append(device.ping(t0 + i * 5000, *at(distance), accuracy_m=accuracy))
    await rig.upload(device, pings)
    assert await rig.alerts(device) == []


@SETTINGS
@given(st.lists(st.sampled_from([-30.0, -1.0, 10.0, 24.0]), min_size=2, max_size=40))
async def test_jitter_between_inside_and_the_band_enters_at_most_once(rig: Rig, hops: list[float]) -> None:
    """Metres from the boundary: inside, or in the band (20 m buffer + 5 m accuracy)."""
    device = await rig.device([circle(1, "exclusion", radius_m=RADIUS, buffer_m=BUFFER)])
    t0 = now_ms() - 3_600_000
    for i, offset in enumerate(hops):
        await rig.upload(device, device.ping(t0 + i * 5000, *at(RADIUS + offset)))
    kinds = await rig.raised(device)
    assert kinds in ([], ["exclusion_zone_entered"])


@SETTINGS
@given(st.lists(st.floats(-400, 400), min_size=1, max_size=25), st.randoms(use_true_random=False))
async def test_the_alerts_of_a_batch_do_not_depend_on_the_order_of_its_pings_nor_on_repeats(
    rig: Rig, track: list[float], shuffler: random.Random
) -> None:
    zones = [circle(1, "exclusion", radius_m=150), circle(2, "inclusion", radius_m=250)]
    t0 = now_ms() - 3_600_000
    first = await rig.device(zones)
    second = await rig.device(zones)
    pings = [first.ping(t0 + i * 7000, *at(east)) for i, east in enumerate(track)]
    await rig.upload(first, pings)
    shuffled = [p | {"device_id": second.device_id} for p in pings]
    shuffler.shuffle(shuffled)
    await rig.upload(second, shuffled)
    repeat = await rig.upload(second, shuffler.sample(shuffled, k=len(shuffled) // 2 + 1))
    assert repeat.accepted == 0
    expected = [(e["kind"], e["act"], e["zone"], e["fixes"]) for e in await rig.alerts(first)]
    assert [(e["kind"], e["act"], e["zone"], e["fixes"]) for e in await rig.alerts(second)] == expected
