"""Publishing a device's configuration to Redis (used by casemgr after every change).

The version comes from one PostgreSQL sequence taken under a lock on the order, so versions
follow commit order and the publish script keeps the newest. The ingest path compares the
version it compiled with the one in Redis on every upload, so a change is in force from the
next upload on.
"""

from __future__ import annotations

import msgspec

from tracking.contract import DeviceConfig
from tracking.keys import KeySpace
from tracking.schedule import CompiledSchedule, Window, parse_time_zone
from tracking.scripts import Scripts
from tracking.zones import zone_layout


def schedule_deadlines(config: DeviceConfig, now_ms: int) -> list[tuple[str, int]]:
    """The first start (plus grace) and end to watch of every scheduled zone, as
    ("cs|device|zone", ms) / ("ce|device|zone", ms). A window already running is checked now."""
    deadlines: list[tuple[str, int]] = []
    zone = parse_time_zone(config.time_zone)
    for spec in config.zones:
        if not spec.schedule:
            continue
        schedule = CompiledSchedule(tuple(Window(tuple(w.days), w.start, w.end) for w in spec.schedule), zone)
        window = schedule.current_or_next(now_ms)
        if window is None:
            continue
        start, end = window
        deadlines.append(
            (f"cs|{config.device_id}|{spec.id}", max(start + spec.grace_minutes * 60_000, now_ms))
        )
        deadlines.append((f"ce|{config.device_id}|{spec.id}", end))
    return deadlines


def script_fields(config: DeviceConfig) -> dict[str, str | int]:
    """The configuration as the device scripts read it (scripts/common.lua FIELDS), numbers as
    numbers: how the ingest's caller hands it to its script on every upload, in msgpack, which
    the script reads without parsing text."""
    t = config.thresholds
    return {
        "dev": config.device_id,
        "order": "" if config.order_id is None else str(config.order_id),
        "case": "" if config.case_id is None else str(config.case_id),
        "unit": "" if config.org_unit_id is None else str(config.org_unit_id),
        "start": config.starts_at_ms,
        "ends": config.ends_at_ms,
        "ivl": config.interval_s,
        "zones": zone_layout(config),
        "N": t.confirm_fixes,
        "T": t.confirm_seconds * 1000,
        "lowb": t.low_battery_percent,
        "critb": t.critical_battery_percent,
        "locT": t.location_unavailable_seconds * 1000,
        "sigbuf": t.signal_buffer_seconds,
    }


def config_fields(config: DeviceConfig) -> dict[str, str]:
    """script_fields as text, as the publish script keeps them in Redis's hash."""
    return {name: str(value) for name, value in script_fields(config).items()}


async def publish_device(scripts: Scripts, keyspace: KeySpace, config: DeviceConfig, *, now_ms: int) -> bool:
    """Put the configuration in force; False if a newer version is there already."""
    keys = keyspace.device(config.device_id)
    deadlines = schedule_deadlines(config, now_ms) if config.order_id is not None else []
    applied = await scripts.publish(
        keys=keys.for_publish(),
        args=[
            config.version,
            msgspec.msgpack.encode(config_fields(config)),
            msgspec.msgpack.encode([list(d) for d in deadlines]),
            msgspec.msgpack.encode(config),
        ],
    )
    return bool(applied)


async def remove_device(scripts: Scripts, keyspace: KeySpace, device_id: str, version: int) -> bool:
    keys = keyspace.device(device_id)
    applied = await scripts.publish(keys=keys.for_publish(), args=[version, "", "", ""])
    return bool(applied)
