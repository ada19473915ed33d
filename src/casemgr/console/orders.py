"""The console's forms for electronic monitoring and tasks: request an order, decide it (a
supervisor, not the requester), fit a device, renew, end; add and remove zones; complete a task.

Each form is read into the API's own request type, so the same rules hold (a legal reason, at
most 90 days, a new assessment for a renewal), and handed to the same service, which authorizes,
audits and, for anything the tracking core must know, publishes after the commit. The officer
lands back on the case file (or its map) where the form was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Response, post
from litestar.response import Redirect

from casemgr.auth.principal import CASE_RECORDERS, CASE_WRITERS, ORDER_APPROVERS, Role
from casemgr.console.pages import (
    SECURITY_HEADERS,
    AnyRequest,
    Form,
    Visitor,
    admit,
    back_to_case,
    failed,
)
from casemgr.db import scoped_transaction
from casemgr.errors import CasemgrError, NotFound, ValidationFailed
from casemgr.monitoring import service as monitoring
from casemgr.monitoring.schemas import (
    Assignment,
    Decision,
    EndRequest,
    OrderRequest,
    RenewalRequest,
    ZoneCreate,
)
from casemgr.supervision import service as supervision
from casemgr.supervision.schemas import TaskCompletion
from casemgr.web.access import public, resources_of
from casemgr.wire import IdPath

WEEKDAYS = range(1, 8)  # ISO: 1 is Monday
T = TypeVar("T")


def _case_file(case_id: int, data: dict[str, str], part: str = "monitoring") -> str:
    return back_to_case(case_id, data, part=part)


def _map(case_id: int, data: dict[str, str]) -> str:
    return back_to_case(case_id, data, page="/map")


def local_instant(text: str, zone: ZoneInfo) -> datetime:
    """A datetime-local field ("2026-11-26T14:30"), read in the bureau's time zone."""
    try:
        return datetime.fromisoformat(text).replace(tzinfo=zone)
    except ValueError:
        raise ValidationFailed(f"{text!r} is not a date and time") from None


def _note(data: dict[str, str]) -> str | None:
    return data.get("note", "").strip() or None


def _read(data: dict[str, Any], into: type[T]) -> T:
    try:
        return msgspec.convert(data, into)
    except msgspec.ValidationError as e:
        raise ValidationFailed(str(e)) from None


def zone_from_form(data: dict[str, str]) -> ZoneCreate:
    """The form's drawing as the API's zone: "lon,lat" and a radius, or "lon,lat;lon,lat;...";
    an inclusion zone with weekdays ticked gets that weekly window (curfew hours) and grace."""

    def point(text: str, field: str) -> tuple[float, float]:
        try:
            lon, lat = (float(part) for part in text.split(","))
        except ValueError:
            raise ValidationFailed(f"{text!r} is not longitude,latitude", field=field) from None
        return lon, lat

    if data.get("shape") == "polygon":
        corners = [point(p, "points") for p in data.get("points", "").split(";") if p.strip()]
        if len(corners) < 3:
            raise ValidationFailed("a polygon needs three corners", field="points")
        shape: dict[str, Any] = {"type": "Polygon", "coordinates": [[*corners, corners[0]]]}
    else:
        lon, lat = point(data.get("centre", ""), "centre")
        try:
            radius = float(data.get("radius_m", ""))
        except ValueError:
            raise ValidationFailed("radius_m is not a number", field="radius_m") from None
        shape = {"type": "circle", "centre": [lon, lat], "radius_m": radius}
    zone: dict[str, Any] = {"kind": data.get("kind"), "label": data.get("label", "").strip(), "shape": shape}
    days = [day for day in WEEKDAYS if data.get(f"day{day}")]
    if data.get("kind") == "inclusion" and days:
        zone["schedule"] = [{"days": days, "start": data.get("start", ""), "end": data.get("end", "")}]
        grace = data.get("grace_minutes") or "0"
        zone["grace_minutes"] = int(grace) if grace.isdigit() else grace  # the type check names it
    return _read(zone, ZoneCreate)


class ConsoleMonitoringController(Controller):
    path = "/console"
    include_in_schema = False

    async def _submit(
        self,
        request: AnyRequest,
        data: dict[str, str],
        roles: frozenset[Role],
        change: Callable[[Visitor], Awaitable[object]],
        then: str,
        invalid: str,
    ) -> Response[Any]:
        """Admit the officer (session, role, CSRF), make the change, and go back to `then`; a
        form the API would refuse with a 422 shows what is wrong, as a rule of the service does."""
        visitor = await admit(request, roles, data)
        if not isinstance(visitor, Visitor):
            return visitor
        try:
            await change(visitor)
        except CasemgrError as e:
            return failed(request, visitor.token, e, invalid=invalid)
        return Redirect(then, status_code=303, headers=SECURITY_HEADERS)

    def _zone(self, request: AnyRequest) -> ZoneInfo:
        return ZoneInfo(resources_of(request).settings.console_time_zone)

    @post("/cases/{case_id:int}/orders", status_code=303, opt=public("console.order_request"))
    async def request_order(self, request: AnyRequest, case_id: IdPath, data: Form) -> Response[Any]:
        """Ask for electronic monitoring: the legal reason, its basis, the assessment behind it
        and the period (a supervisor decides)."""
        resources = resources_of(request)
        zone = self._zone(request)

        async def change(visitor: Visitor) -> object:
            order = _read(
                {
                    "reason_code": data.get("reason_code", ""),
                    "legal_basis": data.get("legal_basis", "").strip(),
                    "assessment_ref": data.get("assessment_ref", "").strip(),
                    "starts_at": local_instant(data.get("starts_at", ""), zone),
                    "ends_at": local_instant(data.get("ends_at", ""), zone),
                    "time_zone": resources.settings.console_time_zone,
                },
                OrderRequest,
            )
            async with scoped_transaction(resources.pool, visitor.principal) as conn:
                return await monitoring.request_order(
                    conn, visitor.ctx, case_id, order, resources.clock.now()
                )

        return await self._submit(
            request, data, CASE_WRITERS, change, _case_file(case_id, data), "order.invalid"
        )

    @post(
        "/cases/{case_id:int}/orders/{order_id:int}/approve",
        status_code=303,
        opt=public("console.order_approve"),
    )
    async def approve_order(
        self, request: AnyRequest, case_id: IdPath, order_id: IdPath, data: Form
    ) -> Response[Any]:
        return await self._decide(request, case_id, order_id, data, approve=True)

    @post(
        "/cases/{case_id:int}/orders/{order_id:int}/reject",
        status_code=303,
        opt=public("console.order_reject"),
    )
    async def reject_order(
        self, request: AnyRequest, case_id: IdPath, order_id: IdPath, data: Form
    ) -> Response[Any]:
        return await self._decide(request, case_id, order_id, data, approve=False)

    async def _decide(
        self, request: AnyRequest, case_id: int, order_id: int, data: dict[str, str], *, approve: bool
    ) -> Response[Any]:
        resources = resources_of(request)

        async def change(visitor: Visitor) -> object:
            decision = _read({"note": _note(data)}, Decision)
            return await monitoring.change_then_publish(
                resources,
                visitor.ctx,
                lambda conn, now, staged: monitoring.decide_order(
                    conn, visitor.ctx, order_id, decision, now, staged, approve=approve
                ),
            )

        return await self._submit(
            request, data, ORDER_APPROVERS, change, _case_file(case_id, data), "order.invalid"
        )

    @post(
        "/cases/{case_id:int}/orders/{order_id:int}/device",
        status_code=303,
        opt=public("console.device_assign"),
    )
    async def assign_device(
        self, request: AnyRequest, case_id: IdPath, order_id: IdPath, data: Form
    ) -> Response[Any]:
        """Fit a device of the office to the subject: it reports under this order from then on."""
        resources = resources_of(request)

        async def change(visitor: Visitor) -> object:
            assignment = _read({"device_id": data.get("device_id", "").strip()}, Assignment)
            return await monitoring.change_then_publish(
                resources,
                visitor.ctx,
                lambda conn, now, staged: monitoring.assign_device(
                    conn, visitor.ctx, order_id, assignment, now, staged
                ),
            )

        return await self._submit(
            request, data, CASE_WRITERS, change, _case_file(case_id, data), "order.device_invalid"
        )

    @post("/cases/{case_id:int}/orders/{order_id:int}/end", status_code=303, opt=public("console.order_end"))
    async def end_order(
        self, request: AnyRequest, case_id: IdPath, order_id: IdPath, data: Form
    ) -> Response[Any]:
        """End an order early (lifted by the court, case closed): tracking stops at once."""
        resources = resources_of(request)

        async def change(visitor: Visitor) -> object:
            ending = _read({"reason": data.get("reason", "").strip()}, EndRequest)
            return await monitoring.change_then_publish(
                resources,
                visitor.ctx,
                lambda conn, now, staged: monitoring.end_order(
                    conn, visitor.ctx, order_id, ending, now, staged
                ),
            )

        return await self._submit(
            request, data, CASE_WRITERS, change, _case_file(case_id, data), "order.invalid"
        )

    @post(
        "/cases/{case_id:int}/orders/{order_id:int}/renewals",
        status_code=303,
        opt=public("console.renewal_request"),
    )
    async def request_renewal(
        self, request: AnyRequest, case_id: IdPath, order_id: IdPath, data: Form
    ) -> Response[Any]:
        """Ask to extend an order in force, on a new assessment."""
        resources = resources_of(request)
        zone = self._zone(request)

        async def change(visitor: Visitor) -> object:
            renewal = _read(
                {
                    "assessment_ref": data.get("assessment_ref", "").strip(),
                    "new_ends_at": local_instant(data.get("new_ends_at", ""), zone),
                },
                RenewalRequest,
            )
            async with scoped_transaction(resources.pool, visitor.principal) as conn:
                return await monitoring.request_renewal(
                    conn, visitor.ctx, order_id, renewal, resources.clock.now()
                )

        return await self._submit(
            request, data, CASE_WRITERS, change, _case_file(case_id, data), "order.invalid"
        )

    @post(
        "/cases/{case_id:int}/orders/{order_id:int}/renewals/{renewal_id:int}/approve",
        status_code=303,
        opt=public("console.renewal_approve"),
    )
    async def approve_renewal(
        self, request: AnyRequest, case_id: IdPath, order_id: IdPath, renewal_id: IdPath, data: Form
    ) -> Response[Any]:
        return await self._decide_renewal(request, case_id, order_id, renewal_id, data, approve=True)

    @post(
        "/cases/{case_id:int}/orders/{order_id:int}/renewals/{renewal_id:int}/reject",
        status_code=303,
        opt=public("console.renewal_reject"),
    )
    async def reject_renewal(
        self, request: AnyRequest, case_id: IdPath, order_id: IdPath, renewal_id: IdPath, data: Form
    ) -> Response[Any]:
        return await self._decide_renewal(request, case_id, order_id, renewal_id, data, approve=False)

    async def _decide_renewal(
        self,
        request: AnyRequest,
        case_id: int,
        order_id: int,
        renewal_id: int,
        data: dict[str, str],
        *,
        approve: bool,
    ) -> Response[Any]:
        resources = resources_of(request)

        async def change(visitor: Visitor) -> object:
            decision = _read({"note": _note(data)}, Decision)
            return await monitoring.change_then_publish(
                resources,
                visitor.ctx,
                lambda conn, now, staged: monitoring.decide_renewal(
                    conn, visitor.ctx, order_id, renewal_id, decision, now, staged, approve=approve
                ),
            )

        return await self._submit(
            request, data, ORDER_APPROVERS, change, _case_file(case_id, data), "order.invalid"
        )

    @post("/cases/{case_id:int}/zones", status_code=303, opt=public("console.zone_add"))
    async def add_zone(self, request: AnyRequest, case_id: IdPath, data: Form) -> Response[Any]:
        """A zone drawn on the map, added to the order in force and published to the tracking
        core, as the API's POST does."""
        resources = resources_of(request)

        async def change(visitor: Visitor) -> object:
            zone = zone_from_form(data)

            async def work(conn: Any, now: datetime, staged: Any) -> Any:
                order_id = await monitoring.order_in_force(conn, visitor.ctx, case_id, now)
                if order_id is None:
                    raise NotFound("this case has no monitoring order in force")
                return await monitoring.add_zone(conn, visitor.ctx, order_id, zone, now, staged)

            return await monitoring.change_then_publish(resources, visitor.ctx, work)

        return await self._submit(request, data, CASE_WRITERS, change, _map(case_id, data), "zone.invalid")

    @post(
        "/cases/{case_id:int}/zones/{zone_id:int}/remove", status_code=303, opt=public("console.zone_remove")
    )
    async def remove_zone(
        self, request: AnyRequest, case_id: IdPath, zone_id: IdPath, data: Form
    ) -> Response[Any]:
        resources = resources_of(request)

        async def change(visitor: Visitor) -> object:
            return await monitoring.change_then_publish(
                resources,
                visitor.ctx,
                lambda conn, now, staged: monitoring.remove_zone(conn, visitor.ctx, zone_id, now, staged),
            )

        return await self._submit(request, data, CASE_WRITERS, change, _map(case_id, data), "zone.invalid")

    @post(
        "/cases/{case_id:int}/tasks/{task_id:int}/complete",
        status_code=303,
        opt=public("console.task_complete"),
    )
    async def complete_task(
        self, request: AnyRequest, case_id: IdPath, task_id: IdPath, data: Form
    ) -> Response[Any]:
        """Mark a due task done, with what was done (an intake held, an assessment written)."""
        resources = resources_of(request)

        async def change(visitor: Visitor) -> object:
            completion = _read({"note": data.get("note", "").strip()}, TaskCompletion)
            async with scoped_transaction(resources.pool, visitor.principal) as conn:
                return await supervision.complete_task(
                    conn, visitor.ctx, task_id, completion.note, resources.clock.now()
                )

        return await self._submit(
            request, data, CASE_RECORDERS, change, _case_file(case_id, data, "tasks"), "task.invalid"
        )
