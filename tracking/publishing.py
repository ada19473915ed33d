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


def config_fields(config: DeviceConfig) -> dict[str, str]:
    t = config.thresholds
    return {
        "dev": config.device_id,
        "order": "" if config.order_id is None else str(config.order_id),
        "case": "" if config.case_id is None else str(config.case_id),
        "unit": "" if config.org_unit_id is None else str(config.org_unit_id),
        "start": str(config.starts_at_ms),
        "ends": str(config.ends_at_ms),
        "ivl": str(config.interval_s),
        "zones": zone_layout(config),
        "N": str(t.confirm_fixes),
        "T": str(t.confirm_seconds * 1000),
        "lowb": str(t.low_battery_percent),
        "critb": str(t.critical_battery_percent),
        "locT": str(t.location_unavailable_seconds * 1000),
        "sigbuf": str(t.signal_buffer_seconds),
    }


# Fields the scripts read as numbers.
_NUMERIC_FIELDS = ("start", "ends", "ivl", "N", "T", "lowb", "critb", "locT", "sigbuf")


def script_fields(config: DeviceConfig) -> dict[str, str | int]:
    """config_fields as the ingest's caller hands them to its script on every upload: numbers
    as msgpack numbers, which the script reads without parsing text (Redis's hash keeps text)."""
    fields: dict[str, str | int] = dict(config_fields(config))
    for name in _NUMERIC_FIELDS:
        fields[name] = int(fields[name])
    return fields


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
