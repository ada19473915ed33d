"""Properties of the zone state machine and of the duplicate window, checked by hypothesis
against the real Redis script."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, example, given, settings
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


# Where a fix lies, east of the centre of an exclusion zone of RADIUS with a BUFFER, at 5 m
# accuracy: inside, in the band (neither counts nor breaks a run), or outside. All on one ray,
# so no path between two fixes crosses the zone.
PLACES = {"I": 0.0, "-": RADIUS + 10.0, "O": RADIUS * 4}


def expected_exclusion_events(marks: list[str], confirm_fixes: int) -> list[tuple[str, str]]:
    """The state machine's model: a state changes after confirm_fixes consecutive fixes of the
    same evidence; a fix in the band is skipped; a fix of the confirmed state ends a run."""
    state, candidate, run = "U", None, 0
    events: list[tuple[str, str]] = []
    for mark in marks:
        if mark == "-":
            continue
        if mark == state:
            candidate, run = None, 0
            continue
        run = run + 1 if mark == candidate else 1
        candidate = mark
        if run >= confirm_fixes:
            if mark == "I":
                events.append(("exclusion_zone_entered", "raise"))
            elif state == "I":
                events += [("exclusion_zone_entered", "clear"), ("exclusion_zone_left", "raise")]
            state, candidate, run = mark, None, 0
    return events


# Outside confirmed, one fix in, one out, one in: no entry, whether in uploads of one or in one.
@example(list("OOIOI"), [1], 2)
@example(list("OOIOI"), [5], 2)
@settings(SETTINGS, max_examples=50)
@given(
    st.lists(st.sampled_from(sorted(PLACES)), min_size=1, max_size=30),
    st.lists(st.integers(1, 6), min_size=1, max_size=30),
    st.integers(2, 3),
)
async def test_the_zone_state_changes_only_after_n_consecutive_fixes_however_they_are_uploaded(
    rig: Rig, marks: list[str], uploads: list[int], confirm_fixes: int
) -> None:
    """Against a model of the state machine, with the fixes split into uploads of 1 to 6: a run
    broken by one fix of the confirmed state starts again, whether the break came in the same
    upload or in another."""
    device = await rig.device(
        [circle(1, "exclusion", radius_m=RADIUS, buffer_m=BUFFER)],
        thresholds=Thresholds(confirm_fixes=confirm_fixes, confirm_seconds=3600),
    )
    t0 = now_ms() - 3_600_000
    pings = [device.ping(t0 + i * 5000, *at(PLACES[mark])) for i, mark in enumerate(marks)]
    sizes = iter(uploads * len(pings))
    while pings:
        size = next(sizes)
        await rig.upload(device, pings[:size])
        pings = pings[size:]
    actual = [(e["kind"], e["act"]) for e in await rig.alerts(device)]
    assert actual == expected_exclusion_events(marks, confirm_fixes)


WINDOW = 1024
# Uploads of consecutive numbers (a device's batches), each starting a step ahead of the highest
# number sent so far or behind it: gaps of every size about the ring's byte boundaries and its
# wrap, then late batches, up to a window long, over the numbers the gaps skipped, after a start
# that sets every bit of the ring. (Numbers drawn one by one at random hardly ever met on one
# bit: a gap that left a bit set went unseen.)
UPLOADS = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from([1, 2, 7, 9, 17, 500, 1000, 1015, 1023, 1024, 1030]),
            st.integers(0, 1100).map(lambda back: -back),
        ),
        st.one_of(st.integers(1, 40), st.just(1000)),
    ),
    min_size=1,
    max_size=10,
)


@settings(SETTINGS, max_examples=100)
@given(UPLOADS)
async def test_the_duplicate_window_drops_exactly_the_numbers_seen_among_the_latest_1024(
    rig: Rig, uploads: list[tuple[int, int]]
) -> None:
    """Against a model that remembers every number: among the latest 1,024 numbers, one seen
    before is a duplicate and any other is new; older than that, a number is new to the ingest
    (the persister's unique key drops a real repeat)."""
    device = await rig.device()
    t0 = now_ms() - 600_000
    seen: set[int] = set()
    highest = -1
    for step, length in [(1, 1000), (1, 100), *uploads]:
        start = max(0, highest + step)
        seqs = list(range(start, start + length))
        expected_accepted = expected_duplicate = 0
        for seq in seqs:
            if seq > highest - WINDOW and seq in seen:
                expected_duplicate += 1
            else:
                expected_accepted += 1
            seen.add(seq)
            highest = max(highest, seq)
        reply = await rig.upload(device, [device.ping(t0 + seq, *at(0), seq=seq) for seq in seqs])
        assert (reply.accepted, reply.duplicate) == (expected_accepted, expected_duplicate), (start, length)
