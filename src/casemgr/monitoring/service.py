"""Rules of electronic monitoring.

Tracking is an intrusion the law allows only under an order: only for community-corrections
cases that are active, for a legal reason from the configured list, approved by a supervisor
at district level or above who did not ask for it, for at most 90 days, renewed 90 days at a
time, each renewal on a new assessment. Every change that tracking must know of is staged
for publication (see publisher.py); the controller publishes after the commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import asyncpg
import msgspec
from tracking.contract import secret_associated_data
from tracking.geometry import Polygon, ShapeError
from tracking.schedule import ScheduleError, Window, parse_time_zone

from casemgr import audit
from casemgr.auth.principal import Role
from casemgr.cases.access import may_read, may_write
from casemgr.cases.service import authorize_case
from casemgr.context import RequestContext
from casemgr.crypto import Keyring
from casemgr.db import scoped_transaction
from casemgr.errors import Conflict, Forbidden, NotFound, ValidationFailed
from casemgr.monitoring import repository
from casemgr.monitoring.publisher import Staged, stage
from casemgr.monitoring.schemas import (
    MAX_ABSENCE_DAYS,
    MAX_ORDER_DAYS,
    Absence,
    AbsenceCreate,
    Assignment,
    CaseMap,
    CircleIn,
    Decision,
    Device,
    DeviceCreate,
    DeviceCredentials,
    EndRequest,
    MonitoringOrder,
    MonitoringReason,
    OrderRequest,
    OrderStatus,
    Renewal,
    RenewalRequest,
    TrackPoint,
    Zone,
    ZoneCreate,
)
from casemgr.orgunits.service import unit_in_scope

if TYPE_CHECKING:
    from casemgr.resources import Resources

T = TypeVar("T")

# A day of fixes every 30 s is 2,880: enough for a map, bounded for the page.
MAX_TRACK_POINTS = 5000

_MAX_TERM = timedelta(days=MAX_ORDER_DAYS)
_APPROVER_UNIT_KINDS = frozenset({"city", "district"})


def _broken(rule: str, detail: str, field: str | None = None) -> ValidationFailed:
    return ValidationFailed(f"{detail} (rule: {rule})", field=field, rule=rule)


async def _order_case(conn: asyncpg.Connection, ctx: RequestContext, order_id: int, *, write: bool) -> int:
    """Object check of an order through its case: 404 if it does not exist, audited 403 if the
    caller may not read (or write) the case."""
    case_id = await repository.order_case_id(conn, order_id)
    if case_id is None:
        raise NotFound(f"monitoring order {order_id} does not exist")
    await authorize_case(conn, ctx, case_id, may_write if write else may_read, "monitor" if write else "read")
    return case_id


async def _facts(conn: asyncpg.Connection, order_id: int) -> repository.OrderFacts:
    facts = await repository.order_facts(conn, order_id)
    if facts is None:  # the object check passed, so the row policy is what hides it
        raise Forbidden(
            "you may not see this monitoring order",
            reason="denied_by_row_policy",
            object_type="monitoring_order",
            object_id=order_id,
        )
    return facts


async def _read(conn: asyncpg.Connection, order_id: int, now: datetime) -> MonitoringOrder:
    found = await repository.order(conn, order_id, now)
    if found is None:
        raise Forbidden(
            "you may not see this monitoring order",
            reason="denied_by_row_policy",
            object_type="monitoring_order",
            object_id=order_id,
        )
    return found


async def _check_approver(
    conn: asyncpg.Connection, ctx: RequestContext, requested_by: int, order_id: int
) -> None:
    caller = ctx.caller
    if caller.role is not Role.SUPERVISOR or await repository.unit_kind(conn, caller.org_unit_id) not in (
        _APPROVER_UNIT_KINDS
    ):
        raise Forbidden(
            "monitoring is approved by a supervisor at district level or above",
            reason="approver_below_district",
            object_type="monitoring_order",
            object_id=order_id,
        )
    if caller.account_id == requested_by:
        raise _broken("four_eyes", "whoever asked for the monitoring may not approve or reject it")


async def _stage_device(
    conn: asyncpg.Connection, device_id: str | None, now: datetime, out: list[Staged]
) -> None:
    if device_id is None:
        return
    staged = await stage(conn, device_id, now)
    if staged is not None:
        out.append(staged)


# --- orders ---------------------------------------------------------------------------------


async def reasons(conn: asyncpg.Connection) -> list[MonitoringReason]:
    return await repository.reasons(conn)


async def request_order(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int, data: OrderRequest, now: datetime
) -> MonitoringOrder:
    await authorize_case(conn, ctx, case_id, may_write, "monitor")
    state = await repository.case_state(conn, case_id)
    if state is None:
        raise Forbidden(
            "you may not monitor this case",
            reason="denied_by_row_policy",
            object_type="case",
            object_id=case_id,
        )
    program, status, _ = state
    if program != "community_corrections":
        raise _broken(
            "community_corrections_only", "electronic monitoring applies to community corrections only"
        )
    if status != "active":
        raise _broken("case_not_active", f"the case is {status}; monitoring needs an active case")
    if not await repository.reason_active(conn, data.reason_code):
        raise _broken(
            "legal_reason_required", "reason_code is not one of the configured legal reasons", "reason_code"
        )
    if data.ends_at <= data.starts_at:
        raise _broken("ends_after_start", "ends_at must come after starts_at", "ends_at")
    if data.ends_at - data.starts_at > _MAX_TERM:
        raise _broken("at_most_90_days", f"an order lasts at most {MAX_ORDER_DAYS} days", "ends_at")
    if data.ends_at <= now:
        raise _broken("ends_in_the_future", "ends_at is already past", "ends_at")
    try:
        parse_time_zone(data.time_zone)
    except ScheduleError as e:
        raise _broken("known_time_zone", str(e), "time_zone") from None
    order_id = await repository.insert_order(
        conn,
        case_id=case_id,
        reason_code=data.reason_code,
        legal_basis=data.legal_basis,
        assessment_ref=data.assessment_ref,
        requested_by=ctx.caller.account_id,
        requested_at=now,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        time_zone=data.time_zone,
    )
    await audit.record(
        conn, ctx, "monitoring.order_request", object_type="monitoring_order", object_id=order_id
    )
    return await _read(conn, order_id, now)


async def decide_order(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    order_id: int,
    data: Decision,
    now: datetime,
    out: list[Staged],
    *,
    approve: bool,
) -> MonitoringOrder:
    await _order_case(conn, ctx, order_id, write=True)
    await repository.lock_order(conn, order_id)
    facts = await _facts(conn, order_id)
    await _check_approver(conn, ctx, facts.requested_by, order_id)
    if facts.status != OrderStatus.REQUESTED:
        raise Conflict(f"the order is {facts.status}; only a requested order is decided")
    if approve and facts.ends_at <= now:
        raise _broken("ends_in_the_future", "the order's end is already past; request a new one")
    status = OrderStatus.ACTIVE if approve else OrderStatus.REJECTED
    await repository.decide_order(conn, order_id, status, ctx.caller.account_id, now, data.note)
    await audit.record(
        conn,
        ctx,
        f"monitoring.order_{'approve' if approve else 'reject'}",
        object_type="monitoring_order",
        object_id=order_id,
    )
    await _stage_device(conn, await repository.device_of_order(conn, order_id), now, out)
    return await _read(conn, order_id, now)


async def end_order(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    order_id: int,
    data: EndRequest,
    now: datetime,
    out: list[Staged],
) -> MonitoringOrder:
    """End an order early (lifted by the court, case closed); tracking stops at once."""
    await _order_case(conn, ctx, order_id, write=True)
    await repository.lock_order(conn, order_id)
    if not await repository.end_order(conn, order_id, now, data.reason):
        raise Conflict("only an active order can be ended")
    device_id = await repository.release(conn, order_id, ctx.caller.account_id, now)
    await audit.record(conn, ctx, "monitoring.order_end", object_type="monitoring_order", object_id=order_id)
    await _stage_device(conn, device_id, now, out)
    return await _read(conn, order_id, now)


async def read_order(
    conn: asyncpg.Connection, ctx: RequestContext, order_id: int, now: datetime
) -> MonitoringOrder:
    await _order_case(conn, ctx, order_id, write=False)
    found = await _read(conn, order_id, now)
    await audit.record(conn, ctx, "monitoring.order_read", object_type="monitoring_order", object_id=order_id)
    return found


async def change_then_publish(
    resources: Resources,
    ctx: RequestContext,
    work: Callable[[asyncpg.Connection, datetime, list[Staged]], Awaitable[T]],
) -> T:
    """Run a change in one scoped transaction; after the commit, tell the tracking core about
    the devices the change staged (what fails stays in the outbox, see publisher.py)."""
    staged: list[Staged] = []
    async with scoped_transaction(resources.pool, ctx.caller) as conn:
        result = await work(conn, resources.clock.now(), staged)
    if staged:
        await resources.tracking.publish(resources.pool, staged, resources.clock.now())
    return result


async def order_in_force(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int, now: datetime
) -> int | None:
    """The case's order in force, for a change to its zones (the change itself authorizes)."""
    await authorize_case(conn, ctx, case_id, may_write, "change")
    return next((o.id for o in await repository.orders_of_case(conn, case_id, now) if o.in_force), None)


async def case_map(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int, now: datetime, hours: int = 24
) -> CaseMap:
    """The subject's zones and recent track: where a person was is read with a stated purpose
    and audited like a case file."""
    await authorize_case(conn, ctx, case_id, may_read, "read")
    orders = await repository.orders_of_case(conn, case_id, now)
    chosen = next((o for o in orders if o.in_force), None) or (
        max(orders, key=lambda o: o.starts_at) if orders else None
    )
    zones: list[Zone] = []
    track: list[TrackPoint] = []
    if chosen is not None:
        zones = (await _read(conn, chosen.id, now)).zones
        fixes = await repository.recent_track(conn, chosen.id, now - timedelta(hours=hours), MAX_TRACK_POINTS)
        track = [
            TrackPoint(at=at, longitude=lon, latitude=lat, accuracy_m=acc) for at, lon, lat, acc in fixes
        ]
    await audit.record(conn, ctx, "monitoring.map_read", object_type="case", object_id=case_id)
    return CaseMap(
        case_id=case_id, order_id=chosen.id if chosen else None, hours=hours, zones=zones, track=track
    )


async def orders_of_case(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int, now: datetime, *, whole: bool = False
) -> list[MonitoringOrder]:
    """The case's orders; `whole` with their zones and renewals (the console's case file)."""
    await authorize_case(conn, ctx, case_id, may_read, "read")
    found = await repository.orders_of_case(conn, case_id, now, whole=whole)
    await audit.record(conn, ctx, "monitoring.orders_list", object_type="case", object_id=case_id)
    return found


# --- renewals -------------------------------------------------------------------------------


async def request_renewal(
    conn: asyncpg.Connection, ctx: RequestContext, order_id: int, data: RenewalRequest, now: datetime
) -> Renewal:
    await _order_case(conn, ctx, order_id, write=True)
    await repository.lock_order(conn, order_id)
    facts = await _facts(conn, order_id)
    if facts.status != OrderStatus.ACTIVE or facts.ends_at <= now:
        raise Conflict("only an order in force can be renewed; request a new order instead")
    if data.new_ends_at <= facts.ends_at:
        raise _broken("renewal_extends", "new_ends_at must come after the order's current end", "new_ends_at")
    if data.new_ends_at - facts.ends_at > _MAX_TERM:
        raise _broken("at_most_90_days", f"a renewal adds at most {MAX_ORDER_DAYS} days", "new_ends_at")
    if await repository.assessment_used(conn, order_id, data.assessment_ref):
        raise _broken(
            "new_assessment_required", "a renewal needs a new assessment reference", "assessment_ref"
        )
    renewal_id = await repository.insert_renewal(
        conn, order_id, data.assessment_ref, facts.ends_at, data.new_ends_at, ctx.caller.account_id, now
    )
    await audit.record(
        conn, ctx, "monitoring.renewal_request", object_type="monitoring_order", object_id=order_id
    )
    found = await repository.renewal(conn, order_id, renewal_id)
    assert found is not None
    return found


async def decide_renewal(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    order_id: int,
    renewal_id: int,
    data: Decision,
    now: datetime,
    out: list[Staged],
    *,
    approve: bool,
) -> Renewal:
    await _order_case(conn, ctx, order_id, write=True)
    await repository.lock_order(conn, order_id)
    renewal = await repository.renewal(conn, order_id, renewal_id)
    if renewal is None:
        raise NotFound(f"renewal {renewal_id} of order {order_id} does not exist")
    await _check_approver(conn, ctx, renewal.requested_by, order_id)
    if renewal.status != "requested":
        raise Conflict(f"the renewal is {renewal.status} already")
    if approve:
        facts = await _facts(conn, order_id)
        if facts.status != OrderStatus.ACTIVE or facts.ends_at <= now:
            raise Conflict("the order is no longer in force; request a new order")
        if not await repository.extend_order(conn, order_id, renewal.previous_ends_at, renewal.new_ends_at):
            raise Conflict("the order's end changed since the renewal was requested")
    await repository.decide_renewal(
        conn,
        order_id,
        renewal_id,
        "approved" if approve else "rejected",
        ctx.caller.account_id,
        now,
        data.note,
    )
    await audit.record(
        conn,
        ctx,
        f"monitoring.renewal_{'approve' if approve else 'reject'}",
        object_type="monitoring_order",
        object_id=order_id,
    )
    if approve:
        await _stage_device(conn, await repository.device_of_order(conn, order_id), now, out)
    found = await repository.renewal(conn, order_id, renewal_id)
    assert found is not None
    return found


# --- authorised absences --------------------------------------------------------------------


async def grant_absence(
    conn: asyncpg.Connection, ctx: RequestContext, order_id: int, data: AbsenceCreate, now: datetime
) -> Absence:
    await _order_case(conn, ctx, order_id, write=True)
    await repository.lock_order(conn, order_id)
    facts = await _facts(conn, order_id)
    if facts.status != OrderStatus.ACTIVE:
        raise Conflict(f"the order is {facts.status}; absences are granted under an active order")
    if data.ends_at <= data.starts_at:
        raise _broken("ends_after_start", "ends_at must come after starts_at", "ends_at")
    if data.ends_at - data.starts_at > timedelta(days=MAX_ABSENCE_DAYS):
        raise _broken("at_most_31_days", f"an absence lasts at most {MAX_ABSENCE_DAYS} days", "ends_at")
    live = {z.id for z in await repository.zones(conn, order_id)}
    unknown = sorted(set(data.zone_ids) - live)
    if unknown:
        raise ValidationFailed(f"zones {unknown} are not zones of this order", field="zone_ids")
    absence_id = await repository.insert_absence(
        conn,
        order_id,
        sorted(set(data.zone_ids)),
        data.starts_at,
        data.ends_at,
        data.reason,
        ctx.caller.account_id,
        now,
    )
    await audit.record(
        conn, ctx, "monitoring.absence_grant", object_type="monitoring_order", object_id=order_id
    )
    found = await repository.absence(conn, order_id, absence_id)
    assert found is not None
    return found


async def list_absences(conn: asyncpg.Connection, ctx: RequestContext, order_id: int) -> list[Absence]:
    await _order_case(conn, ctx, order_id, write=False)
    found = await repository.absences(conn, order_id)
    await audit.record(
        conn, ctx, "monitoring.absence_list", object_type="monitoring_order", object_id=order_id
    )
    return found


async def revoke_absence(
    conn: asyncpg.Connection, ctx: RequestContext, order_id: int, absence_id: int, now: datetime
) -> Absence:
    await _order_case(conn, ctx, order_id, write=True)
    if not await repository.revoke_absence(conn, order_id, absence_id, ctx.caller.account_id, now):
        if await repository.absence(conn, order_id, absence_id) is None:
            raise NotFound(f"absence {absence_id} of order {order_id} does not exist")
        raise Conflict("the absence is revoked already")
    await audit.record(
        conn, ctx, "monitoring.absence_revoke", object_type="monitoring_order", object_id=order_id
    )
    found = await repository.absence(conn, order_id, absence_id)
    assert found is not None
    return found


# --- devices --------------------------------------------------------------------------------


async def _authorize_device(conn: asyncpg.Connection, ctx: RequestContext, device_id: str) -> None:
    path = await repository.device_path(conn, device_id)
    if path is None:
        raise NotFound(f"device {device_id} is not registered")
    if not ctx.caller.sees(path):
        raise Forbidden(
            "the device is held by an office outside your scope",
            reason="out_of_scope",
            object_type="device",
            object_id=device_id,
        )


def _new_secret(keyring: Keyring, device_id: str) -> tuple[str, bytes]:
    secret = secrets.token_urlsafe(32)
    return secret, keyring.seal(secret.encode(), secret_associated_data(device_id))


async def register_device(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    keyring: Keyring,
    data: DeviceCreate,
    now: datetime,
    out: list[Staged],
) -> DeviceCredentials:
    await unit_in_scope(conn, ctx, data.org_unit_id, field="org_unit_id")
    secret, sealed = _new_secret(keyring, data.id)
    await repository.insert_device(
        conn, data.id, data.org_unit_id, sealed, data.reporting_interval_s, ctx.caller.account_id, now
    )
    await audit.record(conn, ctx, "monitoring.device_register", object_type="device", object_id=data.id)
    await _stage_device(conn, data.id, now, out)
    device = await repository.device(conn, data.id)
    assert device is not None
    return DeviceCredentials(device=device, secret=secret)


async def rotate_secret(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    keyring: Keyring,
    device_id: str,
    now: datetime,
    out: list[Staged],
) -> DeviceCredentials:
    """A new secret, in force from the device's next upload; the old one stops working."""
    await _authorize_device(conn, ctx, device_id)
    secret, sealed = _new_secret(keyring, device_id)
    if not await repository.set_secret(conn, device_id, sealed):
        raise Conflict("the device is retired")
    await audit.record(
        conn, ctx, "monitoring.device_rotate_secret", object_type="device", object_id=device_id
    )
    await _stage_device(conn, device_id, now, out)
    device = await repository.device(conn, device_id)
    assert device is not None
    return DeviceCredentials(device=device, secret=secret)


async def list_devices(
    conn: asyncpg.Connection, ctx: RequestContext, after: str | None, limit: int
) -> list[Device]:
    return await repository.devices(conn, ctx.caller.scope, after, limit)


async def assign_device(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    order_id: int,
    data: Assignment,
    now: datetime,
    out: list[Staged],
) -> MonitoringOrder:
    await _order_case(conn, ctx, order_id, write=True)
    await _authorize_device(conn, ctx, data.device_id)
    await repository.lock_order(conn, order_id)
    facts = await _facts(conn, order_id)
    if facts.status not in (OrderStatus.REQUESTED, OrderStatus.ACTIVE):
        raise Conflict(f"the order is {facts.status}; a device goes to a requested or active order")
    device = await repository.device(conn, data.device_id)
    if device is None or device.retired_at is not None:
        raise Conflict("the device is retired")
    await repository.assign(conn, data.device_id, order_id, ctx.caller.account_id, now)
    await audit.record(
        conn, ctx, "monitoring.device_assign", object_type="monitoring_order", object_id=order_id
    )
    await _stage_device(conn, data.device_id, now, out)
    return await _read(conn, order_id, now)


async def release_device(
    conn: asyncpg.Connection, ctx: RequestContext, order_id: int, now: datetime, out: list[Staged]
) -> MonitoringOrder:
    await _order_case(conn, ctx, order_id, write=True)
    await repository.lock_order(conn, order_id)
    device_id = await repository.release(conn, order_id, ctx.caller.account_id, now)
    if device_id is None:
        raise Conflict("the order has no device")
    await audit.record(
        conn, ctx, "monitoring.device_release", object_type="monitoring_order", object_id=order_id
    )
    await _stage_device(conn, device_id, now, out)
    return await _read(conn, order_id, now)


# --- zones ----------------------------------------------------------------------------------


def _check_zone(data: ZoneCreate) -> None:
    if not isinstance(data.shape, CircleIn):
        try:
            Polygon(tuple(data.shape.coordinates[0]))
        except ShapeError as e:
            raise ValidationFailed(str(e), field="shape.coordinates") from None
    if data.schedule:
        for index, window in enumerate(data.schedule):
            try:
                Window(tuple(window.days), window.start, window.end)
            except ScheduleError as e:
                raise ValidationFailed(str(e), field=f"schedule[{index}]") from None
            if window.start == window.end:
                raise ValidationFailed(
                    "a window must not start and end at the same time", field=f"schedule[{index}]"
                )
    elif data.grace_minutes:
        raise ValidationFailed("grace_minutes applies to a zone with a schedule", field="grace_minutes")


async def add_zone(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    order_id: int,
    data: ZoneCreate,
    now: datetime,
    out: list[Staged],
) -> Zone:
    await _order_case(conn, ctx, order_id, write=True)
    _check_zone(data)
    await repository.lock_order(conn, order_id)
    facts = await _facts(conn, order_id)
    if facts.status not in (OrderStatus.REQUESTED, OrderStatus.ACTIVE):
        raise Conflict(f"the order is {facts.status}; zones belong to a requested or active order")
    zone_id = await repository.insert_zone(
        conn,
        order_id,
        data.kind,
        data.label,
        msgspec.json.encode(data.shape),
        data.buffer_m,
        None if data.schedule is None else msgspec.json.encode(data.schedule),
        data.grace_minutes,
        ctx.caller.account_id,
        now,
    )
    await audit.record(conn, ctx, "monitoring.zone_add", object_type="monitoring_order", object_id=order_id)
    await _stage_device(conn, await repository.device_of_order(conn, order_id), now, out)
    zone = next(z for z in await repository.zones(conn, order_id) if z.id == zone_id)
    return zone


async def remove_zone(
    conn: asyncpg.Connection, ctx: RequestContext, zone_id: int, now: datetime, out: list[Staged]
) -> None:
    order_id = await repository.zone_order(conn, zone_id)
    if order_id is None:
        raise NotFound(f"zone {zone_id} does not exist")
    await _order_case(conn, ctx, order_id, write=True)
    await repository.lock_order(conn, order_id)
    if not await repository.remove_zone(conn, zone_id, ctx.caller.account_id, now):
        raise Forbidden(
            "you may not change this zone",
            reason="denied_by_row_policy",
            object_type="zone",
            object_id=zone_id,
        )
    await audit.record(
        conn, ctx, "monitoring.zone_remove", object_type="monitoring_order", object_id=order_id
    )
    await _stage_device(conn, await repository.device_of_order(conn, order_id), now, out)
