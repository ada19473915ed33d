"""Scenario tests of the tracking core: every alert type, and the ways devices misbehave.

Each test publishes a device configuration as casemgr would, uploads fixes through the real
ingest path into the real Redis (single server and cluster), and reads the alert stream.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest
import structlog
from tracking.contract import CircleShape, ScheduleWindow, Thresholds, ZoneSpec
from tracking.keys import KeySpace
from tracking.publishing import remove_device
from tracking.scripts import Scripts
from tracking.watchdog import Watchdog

from casemgr.errors import Forbidden, Unauthenticated
from casemgr.redis_client import create_redis
from tests.servers import free_port
from tests.tracking.conftest import Device, Rig, now_ms

CENTRE = (121.47, 31.23)
STRICT = Thresholds(confirm_fixes=2, confirm_seconds=3600)


def at(east_m: float, north_m: float = 0.0) -> tuple[float, float]:
    """A position east_m east and north_m north of CENTRE."""
    lon = CENTRE[0] + east_m / (111_195.0 * math.cos(math.radians(CENTRE[1])))
    return lon, CENTRE[1] + north_m / 111_195.0


def circle(zone_id: int, kind: str, radius_m: float = 100, buffer_m: float = 20, **extra: object) -> ZoneSpec:
    return ZoneSpec(
        id=zone_id, kind=kind, shape=CircleShape(centre=CENTRE, radius_m=radius_m), buffer_m=buffer_m, **extra
    )  # type: ignore[arg-type]


async def walk(rig: Rig, device: Device, t0: int, east_m: list[float], step_ms: int = 10_000) -> None:
    """One upload per fix, a fix every step_ms, along the east-west line through CENTRE."""
    for i, east in enumerate(east_m):
        await rig.upload(device, device.ping(t0 + i * step_ms, *at(east)))


async def test_entering_an_exclusion_zone_alerts_once_after_n_fixes_and_leaving_clears_it(rig: Rig) -> None:
    device = await rig.device([circle(1, "exclusion")], thresholds=STRICT)
    t0 = now_ms() - 600_000
    await walk(rig, device, t0, [500, 50])
    assert await rig.raised(device) == []  # one fix inside is not yet enough
    await walk(rig, device, t0 + 20_000, [40, 30, 20])
    events = await rig.alerts(device)
    assert [(e["kind"], e["act"]) for e in events] == [("exclusion_zone_entered", "raise")]
    entered = events[0]
    assert (entered["sev"], entered["zone"], entered["ord"], entered["case"]) == (
        "critical",
        "1",
        "100",
        "1100",
    )
    assert entered["fixes"] == "2,3"  # the fixes that confirmed it
    await walk(rig, device, t0 + 60_000, [300, 300])
    assert [(e["kind"], e["act"]) for e in await rig.alerts(device)] == [
        ("exclusion_zone_entered", "raise"),
        ("exclusion_zone_entered", "clear"),
        ("exclusion_zone_left", "raise"),
    ]


async def test_jitter_across_an_exclusion_boundary_enters_once_and_never_flaps(rig: Rig) -> None:
    device = await rig.device([circle(1, "exclusion", radius_m=100, buffer_m=20)], thresholds=STRICT)
    t0 = now_ms() - 600_000
    # 5 m accuracy: the band reaches 125 m from the centre. The fixes hop between 95 and 120 m.
    await walk(rig, device, t0, [95, 120, 95, 120, 95, 120, 95, 120, 95, 120])
    assert await rig.raised(device) == ["exclusion_zone_entered"]


async def test_leaving_an_inclusion_zone_alerts_and_coming_back_clears_it(rig: Rig) -> None:
    device = await rig.device([circle(2, "inclusion", radius_m=200)], thresholds=STRICT)
    t0 = now_ms() - 600_000
    await walk(rig, device, t0, [0, 10, 400, 450])
    assert await rig.raised(device) == ["inclusion_zone_left"]
    await walk(rig, device, t0 + 40_000, [100, 50])
    assert [(e["kind"], e["act"]) for e in await rig.alerts(device)] == [
        ("inclusion_zone_left", "raise"),
        ("inclusion_zone_left", "clear"),
    ]


def curfew_running_now() -> list[ScheduleWindow]:
    """Every day from an hour ago until two hours from now, Shanghai time."""
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    return [
        ScheduleWindow(days=[1, 2, 3, 4, 5, 6, 7], start=start.strftime("%H:%M"), end=end.strftime("%H:%M"))
    ]


async def test_curfew_starting_while_the_subject_is_away_alerts_and_a_late_return_follows(rig: Rig) -> None:
    # A curfew already running when the configuration is published: the watchdog checks at once.
    home = circle(3, "inclusion", radius_m=150, schedule=curfew_running_now(), grace_minutes=0)
    device = await rig.device([home], thresholds=STRICT)
    t0 = now_ms() - 120_000
    watchdog = Watchdog(rig.redis, rig.scripts, rig.keyspace)
    # Away before the curfew's check: no inclusion_zone_left (never inside), but not home.
    await walk(rig, device, t0, [2000, 2100])
    assert (await watchdog.tick()).get("cs") == 1
    assert await rig.raised(device) == ["not_home_at_curfew_start"]
    assert (await watchdog.tick()).get("cs") is None  # handled once; the next start is tomorrow
    due = await rig.redis.zscore(
        rig.keyspace.device(device.device_id).shard.deadlines, f"cs|{device.device_id}|3"
    )
    assert due is not None and due > now_ms() + 3_600_000
    await walk(rig, device, t0 + 30_000, [10, 0])
    kinds = [(e["kind"], e["act"]) for e in await rig.alerts(device)]
    assert kinds == [
        ("not_home_at_curfew_start", "raise"),
        ("not_home_at_curfew_start", "clear"),
        ("late_return", "raise"),
    ]


async def test_a_subject_home_when_the_curfew_starts_raises_nothing(rig: Rig) -> None:
    home = circle(3, "inclusion", radius_m=150, schedule=curfew_running_now())
    device = await rig.device([home], thresholds=STRICT)
    await walk(rig, device, now_ms() - 60_000, [0, 5])
    watchdog = Watchdog(rig.redis, rig.scripts, rig.keyspace)
    await rig.publish(device)  # a zone change re-arms the check of the running curfew
    assert (await watchdog.tick()).get("cs") == 1
    assert await rig.raised(device) == []


async def test_strap_tamper_and_case_opened_stay_open_until_an_officer_closes_them(rig: Rig) -> None:
    device = await rig.device(thresholds=STRICT)
    t0 = now_ms() - 300_000
    await rig.upload(device, [device.ping(t0, strap_state="cut"), device.ping(t0 + 1000, strap_state="cut")])
    await rig.upload(device, device.ping(t0 + 2000, strap_state="intact", case_state="opened"))
    await rig.upload(device, device.ping(t0 + 3000, strap_state="cut", case_state="opened"))
    assert await rig.raised(device) == ["strap_tamper", "device_case_opened"]
    strap = next(e for e in await rig.alerts(device) if e["kind"] == "strap_tamper")
    assert (strap["sev"], strap["fixes"]) == ("critical", "1")
    keys = rig.keyspace.device(device.device_id).all()
    assert await rig.scripts.clear(keys=keys, args=["strap_tamper", ""]) == 1
    await rig.upload(device, device.ping(t0 + 4000, strap_state="cut"))
    assert await rig.raised(device) == ["strap_tamper", "device_case_opened", "strap_tamper"]


async def test_battery_alerts_low_then_critical_and_clears_when_charged(rig: Rig) -> None:
    device = await rig.device(thresholds=STRICT)
    t0 = now_ms() - 300_000
    for i, percent in enumerate([50, 19, 18, 4, 3, 60]):
        await rig.upload(device, device.ping(t0 + i * 1000, battery_percent=percent))
    events = [(e["kind"], e["act"], e["sev"]) for e in await rig.alerts(device)]
    assert events == [
        ("low_battery", "raise", "serious"),
        ("battery_critical", "raise", "serious"),
        ("battery_critical", "clear", "info"),
        ("low_battery", "clear", "info"),
    ]


async def test_a_device_going_dark_inside_a_zone_raises_no_signal_and_the_next_upload_clears_it(
    rig: Rig,
) -> None:
    device = await rig.device(
        [circle(1, "inclusion")], interval_s=1, thresholds=Thresholds(signal_buffer_seconds=0)
    )
    watchdog = Watchdog(rig.redis, rig.scripts, rig.keyspace)
    await rig.upload(device, device.ping(now_ms() - 1000, *at(0)))
    assert (await watchdog.tick()).get("raised") is None
    await asyncio.sleep(1.2)
    assert (await watchdog.tick()).get("raised") == 1
    assert (await watchdog.tick()).get("raised") is None  # one alert per silence
    assert await rig.raised(device) == ["no_signal"]
    await rig.upload(device, device.ping(now_ms(), *at(0)))
    assert [(e["kind"], e["act"]) for e in await rig.alerts(device)] == [
        ("no_signal", "raise"),
        ("no_signal", "clear"),
    ]


async def test_uploads_without_a_valid_fix_for_too_long_raise_location_unavailable(rig: Rig) -> None:
    device = await rig.device(thresholds=Thresholds(location_unavailable_seconds=60))
    t0 = now_ms() - 600_000
    await rig.upload(device, device.ping(t0, *at(0)))
    await rig.upload(device, device.ping(t0 + 30_000))  # no satellites
    # A fix 2 km off at 900 m accuracy is no position either (max_accuracy_m is 250).
    await rig.upload(device, device.ping(t0 + 50_000, *at(2000), accuracy_m=900.0))
    assert await rig.raised(device) == []
    await rig.upload(device, device.ping(t0 + 70_000))
    await rig.upload(device, device.ping(t0 + 80_000))
    assert await rig.raised(device) == ["location_unavailable"]
    await rig.upload(device, device.ping(t0 + 90_000, *at(0)))
    assert [(e["kind"], e["act"]) for e in await rig.alerts(device)][-1] == ("location_unavailable", "clear")


async def test_duplicates_are_dropped_by_sequence_number_and_counted(rig: Rig) -> None:
    device = await rig.device()
    t0 = now_ms() - 600_000
    pings = [device.ping(t0 + i * 1000, *at(0)) for i in range(5)]
    first = await rig.upload(device, pings)
    again = await rig.upload(device, [pings[1], pings[3], device.ping(t0 + 9000, *at(0))])
    assert (first.accepted, first.duplicate) == (5, 0)
    assert (again.accepted, again.duplicate) == (1, 2)
    queued = await rig.pings_queued()
    assert sorted(fix[0] for _, fixes in queued for fix in fixes) == [1, 2, 3, 4, 5, 6]


async def test_the_duplicate_window_holds_the_latest_1024_sequence_numbers_across_gaps(rig: Rig) -> None:
    """The window is a ring of 1,024 bits: a gap clears the bits it skips, so a number that
    reuses the bit of one seen 1,024 earlier is new; anything older than the window is new to
    the ingest (the persister's unique key drops a real repeat)."""
    device = await rig.device()
    t0 = now_ms() - 600_000

    async def send(*seqs: int) -> tuple[int, int]:
        reply = await rig.upload(device, [device.ping(t0 + s, *at(0), seq=s) for s in seqs])
        return reply.accepted, reply.duplicate

    assert await send(10, 1000) == (2, 0)
    assert await send(1040) == (1, 0)  # skips 1001-1039, whose bits 1034 shares with 10
    assert await send(1034, 1034) == (1, 1)
    assert await send(1000, 1040) == (0, 2)  # inside the window
    assert await send(10) == (1, 0)  # older than the window
    assert await send(5000, 5000, 4999) == (2, 1)  # a jump past the window starts it afresh
    assert await send(4999, 1040) == (1, 1)  # 4999 seen; 1040 older than the window


async def test_a_device_counting_one_by_one_keeps_no_duplicate_bitmap_until_a_gap(rig: Rig) -> None:
    """Numbers seen one by one are a run, remembered by its two ends in the state; the bitmap
    is written only when a gap ends the run, and then still knows the run's numbers."""
    device = await rig.device()
    seen_key = rig.keyspace.device(device.device_id).seen
    t0 = now_ms() - 600_000

    async def send(*seqs: int) -> tuple[int, int]:
        reply = await rig.upload(device, [device.ping(t0 + s, *at(0), seq=s) for s in seqs])
        return reply.accepted, reply.duplicate

    assert await send(1, 2, 3) == (3, 0)
    assert await send(4) == (1, 0)
    assert await send(2, 4) == (0, 2)
    assert not await rig.redis.exists(seen_key)
    assert await send(9) == (1, 0)  # skips 5-8
    assert await rig.redis.exists(seen_key)
    assert await send(3, 6, 9) == (1, 2)


async def test_a_state_written_before_runs_were_kept_reads_its_whole_bitmap(rig: Rig) -> None:
    """A state without a run's start (written by the script before this one) has every number
    up to its highest in the bitmap: the ingest reads the bitmap for all of them."""
    device = await rig.device()
    keys = rig.keyspace.device(device.device_id)
    t0 = now_ms() - 600_000
    await rig.upload(device, [device.ping(t0 + s, *at(0), seq=s) for s in (1, 2, 4, 5)])
    # What the earlier script left: a bit for each number seen, and no "rs" in the state.
    await rig.redis.eval(
        "local st = cmsgpack.unpack(redis.call('GET', KEYS[1])); st.rs = nil;"
        "redis.call('SET', KEYS[1], cmsgpack.pack(st), 'KEEPTTL');"
        "redis.call('DEL', KEYS[2]);"
        "for _, n in ipairs({1, 2, 4, 5}) do redis.call('SETBIT', KEYS[2], n, 1) end",
        2,
        keys.state,
        keys.seen,
    )
    reply = await rig.upload(device, [device.ping(t0 + s, *at(0), seq=s) for s in (3, 4, 6)])
    assert (reply.accepted, reply.duplicate) == (2, 1)


async def test_a_late_fix_goes_to_history_but_never_changes_the_state_a_newer_fix_set(rig: Rig) -> None:
    device = await rig.device([circle(1, "exclusion")], thresholds=STRICT)
    t0 = now_ms() - 600_000
    late_a = device.ping(t0 + 5_000, *at(900))  # taken early, uploaded late
    late_b = device.ping(t0 + 6_000, *at(900))
    await rig.upload(device, [device.ping(t0 + 10_000, *at(0)), device.ping(t0 + 11_000, *at(0))])
    assert await rig.raised(device) == ["exclusion_zone_entered"]
    reply = await rig.upload(device, [late_a, late_b])
    assert reply.accepted == 2
    assert await rig.raised(device) == ["exclusion_zone_entered"]  # no exit from older fixes
    assert len(await rig.pings_queued()) == 2  # but both uploads reached the history stream


async def test_an_upload_out_of_order_is_evaluated_in_fix_time_order(rig: Rig) -> None:
    device = await rig.device([circle(1, "exclusion")], thresholds=STRICT)
    t0 = now_ms() - 600_000
    inside = [device.ping(t0 + i * 1000, *at(0)) for i in range(2)]
    outside = [device.ping(t0 + 10_000 + i * 1000, *at(800)) for i in range(2)]
    await rig.upload(device, [outside[1], inside[1], outside[0], inside[0]])
    assert [(e["kind"], e["act"]) for e in await rig.alerts(device)] == [
        ("exclusion_zone_entered", "raise"),
        ("exclusion_zone_entered", "clear"),
        ("exclusion_zone_left", "raise"),
    ]


async def test_sparse_fixes_jumping_across_a_small_exclusion_zone_raise_a_crossing(rig: Rig) -> None:
    device = await rig.device([circle(1, "exclusion", radius_m=40, buffer_m=0)], thresholds=STRICT)
    t0 = now_ms() - 600_000
    await rig.upload(device, device.ping(t0, *at(-600)))
    await rig.upload(device, device.ping(t0 + 60_000, *at(600)))  # straight through the zone
    events = await rig.alerts(device)
    assert [(e["kind"], e["via"], e["fixes"]) for e in events] == [
        ("exclusion_zone_entered", "crossing", "1,2")
    ]
    # Passing beside the zone is no crossing.
    await rig.upload(device, device.ping(t0 + 120_000, *at(-600, 300)))
    assert len(await rig.alerts(device)) == 1


async def test_evidence_held_for_t_seconds_changes_state_before_n_fixes(rig: Rig) -> None:
    device = await rig.device(
        [circle(1, "exclusion")], thresholds=Thresholds(confirm_fixes=10, confirm_seconds=30)
    )
    t0 = now_ms() - 600_000
    await walk(rig, device, t0, [0, 0], step_ms=20_000)
    assert await rig.raised(device) == []
    await walk(rig, device, t0 + 40_000, [0])  # 40 s after the first fix inside
    assert await rig.raised(device) == ["exclusion_zone_entered"]


async def test_a_zone_change_is_in_force_from_the_next_upload(rig: Rig) -> None:
    device = await rig.device(thresholds=STRICT)
    t0 = now_ms() - 600_000
    await walk(rig, device, t0, [0, 0])
    assert await rig.raised(device) == []
    await rig.publish(device, zones=[circle(7, "exclusion")])
    await walk(rig, device, t0 + 20_000, [0, 0])
    assert await rig.raised(device) == ["exclusion_zone_entered"]


async def test_new_zones_are_evaluated_where_a_fix_reads_as_the_old_zones_settled_state(rig: Rig) -> None:
    """A fix whose evidence matches every zone's settled state skips the zones: that shortcut
    belongs to the zones it was worked out for. Outside an exclusion zone, then outside an
    inclusion zone that replaced it, reads "O" both times, and must still leave the new zone."""
    device = await rig.device([circle(1, "exclusion")], thresholds=STRICT)
    t0 = now_ms() - 600_000
    await walk(rig, device, t0, [400, 400, 400])
    await rig.publish(device, zones=[circle(2, "inclusion")])
    await walk(rig, device, t0 + 30_000, [400, 400])
    assert await rig.raised(device) == ["inclusion_zone_left"]


async def test_the_zones_states_are_kept_together_and_only_for_the_zones_configured(rig: Rig) -> None:
    device = await rig.device(
        [circle(1, "exclusion"), circle(2, "inclusion", radius_m=50)], thresholds=STRICT
    )
    t0 = now_ms() - 600_000
    await walk(rig, device, t0, [400, 400])
    assert await zone_states(rig, device) == ({"1", "2"}, set())
    await rig.publish(device, zones=[circle(3, "exclusion")])
    await walk(rig, device, t0 + 20_000, [0, 0])
    assert await zone_states(rig, device) == ({"3"}, set())


async def test_a_state_written_before_the_zones_were_kept_together_keeps_each_zones_state(rig: Rig) -> None:
    """The script before kept each zone's state machine in a field of its own (z:<zone>); the
    ingest reads those, so a subject inside an exclusion zone is still inside, and leaving it
    raises exclusion_zone_left. The next change writes them together, the old fields gone."""
    device = await rig.device([circle(1, "exclusion")], thresholds=STRICT)
    t0 = now_ms() - 600_000
    await walk(rig, device, t0, [0, 0])
    assert await rig.raised(device) == ["exclusion_zone_entered"]
    state_key = rig.keyspace.device(device.device_id).state
    await rig.redis.eval(
        "local st = cmsgpack.unpack(redis.call('GET', KEYS[1]));"
        "for zid, value in pairs(cmsgpack.unpack(st.zs)) do st['z:' .. zid] = value end;"
        "st.zs = nil; st.zq = nil;"
        "redis.call('SET', KEYS[1], cmsgpack.pack(st), 'KEEPTTL')",
        1,
        state_key,
    )
    assert await zone_states(rig, device) == (set(), {"z:1"})
    await walk(rig, device, t0 + 20_000, [400, 400])
    assert await rig.raised(device) == ["exclusion_zone_entered", "exclusion_zone_left"]
    assert await zone_states(rig, device) == ({"1"}, set())


async def zone_states(rig: Rig, device: Device) -> tuple[set[str], set[str]]:
    """The zones in the state's packed map (zs), and the state's fields of one zone each (z:<zone>,
    as the script before wrote them). Read by Lua: zs is MessagePack inside a MessagePack string."""
    in_map, own_fields = await rig.redis.eval(
        "local st = cmsgpack.unpack(redis.call('GET', KEYS[1]));"
        "local in_map, own = {}, {};"
        "for zid in pairs(st.zs and cmsgpack.unpack(st.zs) or {}) do in_map[#in_map + 1] = zid end;"
        "for name in pairs(st) do if string.sub(name, 1, 2) == 'z:' then own[#own + 1] = name end end;"
        "return {in_map, own}",
        1,
        rig.keyspace.device(device.device_id).state,
    )
    return {z.decode() for z in in_map}, {f.decode() for f in own_fields}


async def test_a_device_without_an_active_order_is_refused_and_nothing_is_stored(rig: Rig) -> None:
    unassigned = await rig.device(order_id=None)
    with pytest.raises(Forbidden):
        await rig.upload(unassigned, unassigned.ping(now_ms() - 1000, *at(0)))
    ended = await rig.device(starts_at_ms=now_ms() - 86_400_000, ends_at_ms=now_ms() - 1000)
    with pytest.raises(Forbidden):
        await rig.upload(ended, ended.ping(now_ms() - 5000, *at(0)))
    assert await rig.pings_queued() == []
    # The state holds what publishing put there (the configuration's version), nothing of the upload.
    state = await rig.redis.get(rig.keyspace.device(ended.device_id).state)
    assert state is None or set(msgspec.msgpack.decode(state)) == {"cv"}


async def test_the_watchdog_handles_only_what_is_due_however_many_subjects_there_are(rig: Rig) -> None:
    devices = [await rig.device(interval_s=3600) for _ in range(40)]
    watchdog = Watchdog(rig.redis, rig.scripts, rig.keyspace)
    assert await watchdog.tick() == {}  # forty subjects, nothing due: no work
    # Two subjects' no_signal deadlines come due (time passes for them alone).
    for device in devices[:2]:
        keys = rig.keyspace.device(device.device_id)
        await rig.redis.zadd(keys.shard.deadlines, {f"ns|{device.device_id}": now_ms() - 1})
    assert await watchdog.tick() == {"later": 2}  # their last upload is recent: moved, not raised
    assert await rig.alerts() == []


async def seconds_holding_no_signal(rig: Rig, device: Device, around_ms: tuple[int, int]) -> list[int]:
    """The seconds, from around_ms[0] to around_ms[1], whose set holds the device's no_signal deadline."""
    shard = rig.keyspace.device(device.device_id).shard
    seconds = range(around_ms[0] // 1000, around_ms[1] // 1000 + 1)
    return [
        second
        for second in seconds
        if await rig.redis.sismember(shard.deadlines_of_second(second), f"ns|{device.device_id}")
    ]


async def test_uploads_move_the_no_signal_deadline_between_sets_of_a_second_not_in_the_sorted_set(
    rig: Rig,
) -> None:
    device = await rig.device(interval_s=60)  # due 60 s plus the 120 s buffer after an upload
    shard = rig.keyspace.device(device.device_id).shard
    member = f"ns|{device.device_id}"
    assert await rig.redis.zscore(shard.deadlines, member) is not None  # published: sorted set
    held = []
    for _ in range(2):
        before = now_ms()
        await rig.upload(device, device.ping(before - 1000, *at(0)))
        span = (before + 180_000, now_ms() + 180_000)
        held.append(await seconds_holding_no_signal(rig, device, span))
        await asyncio.sleep(1.05)  # the next upload's deadline falls in a later second
    assert await rig.redis.zscore(shard.deadlines, member) is None
    assert [len(seconds) for seconds in held] == [1, 1]
    assert held[1][0] > held[0][0]
    assert not await rig.redis.exists(shard.deadlines_of_second(held[0][0]))  # left, not copied
    # Publishing again puts it back in the sorted set alone, counted from the last upload.
    await rig.publish(device)
    assert await rig.redis.zscore(shard.deadlines, member) is not None
    assert not await rig.redis.exists(shard.deadlines_of_second(held[1][0]))


async def test_a_no_signal_deadline_stays_in_one_place_across_a_new_order_and_a_stray_copy(rig: Rig) -> None:
    device = await rig.device(interval_s=60)
    shard = rig.keyspace.device(device.device_id).shard
    member = f"ns|{device.device_id}"

    async def upload() -> list[int]:
        before = now_ms()
        await rig.upload(device, device.ping(before - 1000, *at(0)))
        return await seconds_holding_no_signal(rig, device, (before + 180_000, now_ms() + 180_000))

    [first] = await upload()
    # A new order starts the subject's state afresh: the deadline of the old one's upload goes too.
    await rig.publish(device, order_id=200)
    assert await rig.redis.zscore(shard.deadlines, member) is not None
    assert not await rig.redis.exists(shard.deadlines_of_second(first))
    await asyncio.sleep(1.05)
    [second] = await upload()
    assert await rig.redis.zscore(shard.deadlines, member) is None
    # A copy in the sorted set that comes due while an upload's set holds the deadline is dropped.
    await rig.redis.zadd(shard.deadlines, {member: now_ms() - 1})
    assert await Watchdog(rig.redis, rig.scripts, rig.keyspace).tick() == {"later": 1}
    assert await rig.redis.zscore(shard.deadlines, member) is None
    assert await rig.redis.sismember(shard.deadlines_of_second(second), member)


async def test_a_watchdog_away_for_hours_catches_up_on_every_second_it_missed(rig: Rig) -> None:
    device = await rig.device(interval_s=1, thresholds=Thresholds(signal_buffer_seconds=0))
    shard = rig.keyspace.device(device.device_id).shard
    before = now_ms()
    await rig.upload(device, device.ping(before - 1000, *at(0)))
    [second] = await seconds_holding_no_signal(rig, device, (before, now_ms() + 1000))
    await asyncio.sleep(1.2)  # the device is dark now
    # As if the deadline had come due 40 minutes ago and the watchdog had been gone for two hours:
    # more seconds than one claim looks at (an hour).
    away = second - 2400
    await rig.redis.smove(
        shard.deadlines_of_second(second), shard.deadlines_of_second(away), f"ns|{device.device_id}"
    )
    await rig.redis.set(shard.deadlines_next_second, away - 4800)
    watchdog = Watchdog(rig.redis, rig.scripts, rig.keyspace)
    assert await watchdog.tick() == {"raised": 1}
    assert await rig.raised(device) == ["no_signal"]
    assert int(await rig.redis.get(shard.deadlines_next_second)) > second
    assert not await rig.redis.exists(shard.deadlines_of_second(away))


async def test_the_end_of_a_curfew_closes_its_open_conditions(rig: Rig) -> None:
    home = circle(3, "inclusion", radius_m=150, schedule=curfew_running_now())
    device = await rig.device([home], thresholds=STRICT)
    watchdog = Watchdog(rig.redis, rig.scripts, rig.keyspace)
    await walk(rig, device, now_ms() - 60_000, [3000, 3100])
    await watchdog.tick()
    assert await rig.raised(device) == ["not_home_at_curfew_start"]
    keys = rig.keyspace.device(device.device_id)
    await rig.redis.zadd(keys.shard.deadlines, {f"ce|{device.device_id}|3": now_ms() - 1})  # the curfew ends
    assert (await watchdog.tick()).get("ce") == 1
    assert [(e["kind"], e["act"]) for e in await rig.alerts(device)] == [
        ("not_home_at_curfew_start", "raise"),
        ("not_home_at_curfew_start", "clear"),
    ]
    due = await rig.redis.zscore(keys.shard.deadlines, f"ce|{device.device_id}|3")
    assert due is not None and due > now_ms() + 3_600_000  # tomorrow's end


async def test_a_device_removed_from_tracking_is_unknown_from_its_next_upload(rig: Rig) -> None:
    device = await rig.device()
    await rig.upload(device, device.ping(now_ms() - 2000, *at(0)))  # cached by the ingest
    await remove_device(rig.scripts, rig.keyspace, device.device_id, 10**9)
    with pytest.raises(Unauthenticated):
        await rig.upload(device, device.ping(now_ms() - 1000, *at(0)))


async def test_fixes_sent_after_the_order_ended_get_403_not_a_list_of_rejections(rig: Rig) -> None:
    device = await rig.device(starts_at_ms=now_ms() - 86_400_000, ends_at_ms=now_ms() + 1500)
    await rig.upload(device, device.ping(now_ms() - 1000, *at(0)))  # in force: cached by the ingest
    await asyncio.sleep(2)
    with pytest.raises(Forbidden):
        await rig.upload(device, device.ping(now_ms() - 100, *at(0)))


async def test_a_subjects_positions_outlive_the_order_by_a_week_at_most_and_a_renewal_extends_that(
    rig: Rig,
) -> None:
    """The state (which holds the last valid fix) and the duplicate bitmap expire a week after
    the order ends, whichever script wrote them; a renewal published moves that with the new end."""
    ends = now_ms() + 86_400_000
    week = 7 * 86_400_000
    device = await rig.device(ends_at_ms=ends)
    keys = rig.keyspace.device(device.device_id)
    t0 = now_ms() - 60_000
    await rig.upload(device, [device.ping(t0, *at(0), seq=1), device.ping(t0 + 1000, *at(0), seq=5)])
    assert await rig.redis.exists(keys.seen)  # the gap 2-4 wrote the bitmap
    for key in (keys.state, keys.seen):
        assert await rig.redis.execute_command("PEXPIRETIME", key) == ends + week

    renewed = ends + 30 * 86_400_000
    await rig.publish(device, ends_at_ms=renewed)
    await rig.upload(device, device.ping(t0 + 2000, *at(0), seq=6))
    for key in (keys.state, keys.seen):
        assert await rig.redis.execute_command("PEXPIRETIME", key) == renewed + week


async def test_a_watchdog_that_cannot_reach_redis_says_why_and_keeps_trying() -> None:
    port = free_port()  # nothing listens there
    redis = create_redis(f"redis://127.0.0.1:{port}/0")
    watchdog = Watchdog(redis, Scripts.register(redis), KeySpace(4, "dead"))
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(watchdog.run_forever(every_s=0.01))
        for _ in range(200):
            if len(logs) >= 2:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await redis.aclose()
    assert len(logs) >= 2  # it went on after the first failure
    assert logs[0]["event"] == "watchdog_failed"
    assert logs[0]["error_type"] == "ConnectionError"
    assert f"127.0.0.1:{port}" in logs[0]["reason"]
