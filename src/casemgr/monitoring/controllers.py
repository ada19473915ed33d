"""HTTP routes of electronic monitoring: orders and renewals, devices, zones.

Each route runs its rules in one scoped transaction; what tracking must learn is published to
Redis after the commit (and retried from the outbox if Redis is away).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar

import asyncpg
from litestar import Controller, delete, get, post
from litestar.di import Provide
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter

from casemgr.auth.principal import CASE_WRITERS, ORDER_APPROVERS, Role
from casemgr.db import scoped_transaction
from casemgr.monitoring import service
from casemgr.monitoring.publisher import Staged
from casemgr.monitoring.schemas import (
    Absence,
    AbsenceCreate,
    Assignment,
    CaseMap,
    Decision,
    Device,
    DeviceCreate,
    DeviceCredentials,
    EndRequest,
    MonitoringOrder,
    MonitoringReason,
    OrderRequest,
    Renewal,
    RenewalRequest,
    Zone,
    ZoneCreate,
)
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import IdPath

DEVICE_KEEPERS = (Role.SUPERVISOR, Role.ADMIN)
T = TypeVar("T")
DevicePath = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


async def _in_transaction_then_publish(
    request: AnyRequest,
    ctx: Ctx,
    work: Callable[[asyncpg.Connection, datetime, list[Staged]], Awaitable[T]],
) -> T:
    return await service.change_then_publish(resources_of(request), ctx, work)


class MonitoringOrderController(Controller):
    path = "/"
    tags = ["monitoring"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @get("/monitoring/reasons", opt=access("monitoring.reasons", CASE_WRITERS))
    async def reasons(self, request: AnyRequest, ctx: Ctx) -> list[MonitoringReason]:
        """The legal reasons an order may rest on."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.reasons(conn)

    @post("/cases/{case_id:int}/monitoring-orders", opt=access("monitoring.order_request", CASE_WRITERS))
    async def request_order(
        self, request: AnyRequest, case_id: IdPath, data: JSONBody[OrderRequest], ctx: Ctx
    ) -> MonitoringOrder:
        """Ask for electronic monitoring of a community-corrections case (at most 90 days)."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.request_order(conn, ctx, case_id, data, resources.clock.now())

    @get("/cases/{case_id:int}/monitoring-orders", opt=access("monitoring.orders_list", CASE_WRITERS))
    async def orders_of_case(self, request: AnyRequest, case_id: IdPath, ctx: Ctx) -> list[MonitoringOrder]:
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.orders_of_case(conn, ctx, case_id, resources.clock.now())

    @get("/cases/{case_id:int}/map", opt=access("monitoring.map_read", CASE_WRITERS, purpose=True))
    async def case_map(
        self,
        request: AnyRequest,
        case_id: IdPath,
        ctx: Ctx,
        hours: Annotated[int, QueryParameter(ge=1, le=168, description="how far back the track goes")] = 24,
    ) -> CaseMap:
        """The subject's zones and track (fixes with a position, oldest first, as [time,
        longitude, latitude, accuracy]): where a person was, read with a stated purpose."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.case_map(conn, ctx, case_id, resources.clock.now(), hours)

    @get("/monitoring-orders/{order_id:int}", opt=access("monitoring.order_read", CASE_WRITERS, purpose=True))
    async def read_order(self, request: AnyRequest, order_id: IdPath, ctx: Ctx) -> MonitoringOrder:
        """The order with its device, zones (places in the subject's life) and renewals."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.read_order(conn, ctx, order_id, resources.clock.now())

    @post(
        "/monitoring-orders/{order_id:int}/approve",
        status_code=200,
        opt=access("monitoring.order_approve", ORDER_APPROVERS),
    )
    async def approve_order(
        self, request: AnyRequest, order_id: IdPath, data: JSONBody[Decision], ctx: Ctx
    ) -> MonitoringOrder:
        """A supervisor at district level or above, not the requester, puts the order in force."""
        return await self._decide(request, order_id, data, ctx, approve=True)

    @post(
        "/monitoring-orders/{order_id:int}/reject",
        status_code=200,
        opt=access("monitoring.order_reject", ORDER_APPROVERS),
    )
    async def reject_order(
        self, request: AnyRequest, order_id: IdPath, data: JSONBody[Decision], ctx: Ctx
    ) -> MonitoringOrder:
        return await self._decide(request, order_id, data, ctx, approve=False)

    async def _decide(
        self, request: AnyRequest, order_id: int, data: Decision, ctx: Ctx, *, approve: bool
    ) -> MonitoringOrder:
        return await _in_transaction_then_publish(
            request,
            ctx,
            lambda conn, now, out: service.decide_order(conn, ctx, order_id, data, now, out, approve=approve),
        )

    @post(
        "/monitoring-orders/{order_id:int}/end",
        status_code=200,
        opt=access("monitoring.order_end", CASE_WRITERS),
    )
    async def end_order(
        self, request: AnyRequest, order_id: IdPath, data: JSONBody[EndRequest], ctx: Ctx
    ) -> MonitoringOrder:
        """End an order early; tracking of the subject stops with the next upload."""
        return await _in_transaction_then_publish(
            request, ctx, lambda conn, now, out: service.end_order(conn, ctx, order_id, data, now, out)
        )

    @post(
        "/monitoring-orders/{order_id:int}/renewals", opt=access("monitoring.renewal_request", CASE_WRITERS)
    )
    async def request_renewal(
        self, request: AnyRequest, order_id: IdPath, data: JSONBody[RenewalRequest], ctx: Ctx
    ) -> Renewal:
        """Ask to extend an order in force by at most 90 days, on a new assessment."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.request_renewal(conn, ctx, order_id, data, resources.clock.now())

    @post(
        "/monitoring-orders/{order_id:int}/renewals/{renewal_id:int}/approve",
        status_code=200,
        opt=access("monitoring.renewal_approve", ORDER_APPROVERS),
    )
    async def approve_renewal(
        self, request: AnyRequest, order_id: IdPath, renewal_id: IdPath, data: JSONBody[Decision], ctx: Ctx
    ) -> Renewal:
        return await self._decide_renewal(request, order_id, renewal_id, data, ctx, approve=True)

    @post(
        "/monitoring-orders/{order_id:int}/renewals/{renewal_id:int}/reject",
        status_code=200,
        opt=access("monitoring.renewal_reject", ORDER_APPROVERS),
    )
    async def reject_renewal(
        self, request: AnyRequest, order_id: IdPath, renewal_id: IdPath, data: JSONBody[Decision], ctx: Ctx
    ) -> Renewal:
        return await self._decide_renewal(request, order_id, renewal_id, data, ctx, approve=False)

    async def _decide_renewal(
        self, request: AnyRequest, order_id: int, renewal_id: int, data: Decision, ctx: Ctx, *, approve: bool
    ) -> Renewal:
        return await _in_transaction_then_publish(
            request,
            ctx,
            lambda conn, now, out: service.decide_renewal(
                conn, ctx, order_id, renewal_id, data, now, out, approve=approve
            ),
        )

    @post(
        "/monitoring-orders/{order_id:int}/device",
        status_code=200,
        opt=access("monitoring.device_assign", CASE_WRITERS),
    )
    async def assign_device(
        self, request: AnyRequest, order_id: IdPath, data: JSONBody[Assignment], ctx: Ctx
    ) -> MonitoringOrder:
        """Fit a device to the subject; it reports under this order from then on."""
        return await _in_transaction_then_publish(
            request, ctx, lambda conn, now, out: service.assign_device(conn, ctx, order_id, data, now, out)
        )

    @delete(
        "/monitoring-orders/{order_id:int}/device",
        status_code=200,
        opt=access("monitoring.device_release", CASE_WRITERS),
    )
    async def release_device(self, request: AnyRequest, order_id: IdPath, ctx: Ctx) -> MonitoringOrder:
        return await _in_transaction_then_publish(
            request, ctx, lambda conn, now, out: service.release_device(conn, ctx, order_id, now, out)
        )

    @post("/monitoring-orders/{order_id:int}/zones", opt=access("monitoring.zone_add", CASE_WRITERS))
    async def add_zone(
        self, request: AnyRequest, order_id: IdPath, data: JSONBody[ZoneCreate], ctx: Ctx
    ) -> Zone:
        """A circle or a GeoJSON polygon, inclusion or exclusion, with an optional weekly schedule."""
        return await _in_transaction_then_publish(
            request, ctx, lambda conn, now, out: service.add_zone(conn, ctx, order_id, data, now, out)
        )

    @post("/monitoring-orders/{order_id:int}/absences", opt=access("monitoring.absence_grant", CASE_WRITERS))
    async def grant_absence(
        self, request: AnyRequest, order_id: IdPath, data: JSONBody[AbsenceCreate], ctx: Ctx
    ) -> Absence:
        """Let the subject be away from named zones for a window: their alerts are recorded as
        covered and never escalate."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.grant_absence(conn, ctx, order_id, data, resources.clock.now())

    @get("/monitoring-orders/{order_id:int}/absences", opt=access("monitoring.absence_list", CASE_WRITERS))
    async def list_absences(self, request: AnyRequest, order_id: IdPath, ctx: Ctx) -> list[Absence]:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.list_absences(conn, ctx, order_id)

    @post(
        "/monitoring-orders/{order_id:int}/absences/{absence_id:int}/revoke",
        status_code=200,
        opt=access("monitoring.absence_revoke", CASE_WRITERS),
    )
    async def revoke_absence(
        self, request: AnyRequest, order_id: IdPath, absence_id: IdPath, ctx: Ctx
    ) -> Absence:
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.revoke_absence(conn, ctx, order_id, absence_id, resources.clock.now())

    @delete("/zones/{zone_id:int}", status_code=204, opt=access("monitoring.zone_remove", CASE_WRITERS))
    async def remove_zone(self, request: AnyRequest, zone_id: IdPath, ctx: Ctx) -> None:
        await _in_transaction_then_publish(
            request, ctx, lambda conn, now, out: service.remove_zone(conn, ctx, zone_id, now, out)
        )


class DeviceController(Controller):
    path = "/devices"
    tags = ["monitoring"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @post("/", opt=access("monitoring.device_register", DEVICE_KEEPERS))
    async def register(
        self, request: AnyRequest, data: JSONBody[DeviceCreate], ctx: Ctx
    ) -> DeviceCredentials:
        """Register a device for an office; its secret is shown in this reply only."""
        resources = resources_of(request)
        return await _in_transaction_then_publish(
            request,
            ctx,
            lambda conn, now, out: service.register_device(conn, ctx, resources.keyring, data, now, out),
        )

    @get("/", opt=access("monitoring.device_list", (*CASE_WRITERS, Role.ADMIN)))
    async def list_devices(
        self,
        request: AnyRequest,
        ctx: Ctx,
        after: FromQuery[Annotated[str | None, QueryParameter(max_length=64)]] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[Device]:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.list_devices(conn, ctx, after, limit)

    @post(
        "/{device_id:str}/secret",
        status_code=200,
        opt=access("monitoring.device_rotate_secret", DEVICE_KEEPERS),
    )
    async def rotate_secret(self, request: AnyRequest, device_id: DevicePath, ctx: Ctx) -> DeviceCredentials:
        """A new secret, shown once; the old one stops working at the device's next upload."""
        resources = resources_of(request)
        return await _in_transaction_then_publish(
            request,
            ctx,
            lambda conn, now, out: service.rotate_secret(conn, ctx, resources.keyring, device_id, now, out),
        )
