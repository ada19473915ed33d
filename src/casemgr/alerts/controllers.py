"""HTTP routes of the officers' inbox."""

from __future__ import annotations

from typing import Annotated

import structlog
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, HeaderParameter, JSONBody, QueryParameter

from casemgr import audit
from casemgr.alerts import service
from casemgr.alerts.push import EventStream, LiveStream
from casemgr.alerts.schemas import Alert, AlertCounts, AlertPage, AlertStatus, Resolution, Severity
from casemgr.auth.principal import CASE_READERS, CASE_WRITERS
from casemgr.cases.schemas import Program
from casemgr.db import scoped_transaction
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import MAX_ID, Cursor, IdPath

log = structlog.get_logger(__name__)


Kind = Annotated[str | None, QueryParameter(pattern=r"^[a-z][a-z_]{0,40}$")]
UnitId = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)]
Minutes = Annotated[int | None, QueryParameter(ge=0, le=525_600, description="raised at least this long ago")]


def inbox_query(
    status: FromQuery[AlertStatus | None] = None,
    kind: Kind = None,
    severity: FromQuery[Severity | None] = None,
    org_unit_id: UnitId = None,
    program: FromQuery[Program | None] = None,
    older_than_minutes: Minutes = None,
    escalated_to_me: FromQuery[bool] = False,
    mine: FromQuery[bool] = False,
    case_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID, description="only this case")] = None,
) -> service.InboxQuery:
    """The inbox's filters from the query string, shared by the list and its counts."""
    return service.InboxQuery(
        status=status,
        kind=kind,
        severity=severity,
        program=program,
        org_unit_id=org_unit_id,
        older_than_minutes=older_than_minutes,
        escalated_to_me=escalated_to_me,
        mine=mine,
        case_id=case_id,
    )


Filters = NamedDependency[service.InboxQuery]


class AlertController(Controller):
    path = "/alerts"
    tags = ["alerts"]
    dependencies = {
        "ctx": Provide(request_context, sync_to_thread=False),
        "filters": Provide(inbox_query, sync_to_thread=False),
    }

    @get("/", opt=access("alert.list", CASE_READERS))
    async def list_alerts(
        self,
        request: AnyRequest,
        ctx: Ctx,
        filters: Filters,
        after: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> AlertPage:
        """The inbox: alerts inside the caller's scope (tracking alerts, missed intakes, overdue
        contacts and tasks), oldest first, with filters."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            now = resources.clock.now()
            return await service.inbox(conn, ctx, filters, after=after, limit=limit, now=now)

    @get("/counts", opt=access("alert.counts", CASE_READERS))
    async def counts(self, request: AnyRequest, ctx: Ctx, filters: Filters) -> AlertCounts:
        """How many alerts the same filters hold, by status and severity."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.counts(conn, ctx, filters, resources.clock.now())

    @get("/stream", opt=access("alert.stream", CASE_READERS))
    async def stream(
        self,
        request: AnyRequest,
        ctx: Ctx,
        last_event_id: Annotated[
            int | None, HeaderParameter(name="last-event-id", ge=0, le=MAX_ID, required=False)
        ] = None,
    ) -> EventStream:
        """Server-Sent Events: every new or changed alert inside the caller's scope, as it
        happens. Each event's id is a change number: reconnect with `Last-Event-ID` and the
        stream resumes right after it, nothing missed and nothing twice. Without one it starts
        with what changes from now on. A comment every 15 s keeps proxies from closing it; the
        stream ends when the session does."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            start = last_event_id if last_event_id is not None else await service.last_change(conn)
            await audit.record(conn, ctx, "alert.stream", object_type="alert")
        token = (request.headers.get("authorization") or "").partition(" ")[2].strip()
        # Frames are written as they are (each encoded once for every client, see push.py).
        return EventStream(LiveStream(resources, ctx, token, start))

    @get("/{alert_id:int}", opt=access("alert.read", CASE_READERS))
    async def read(self, request: AnyRequest, alert_id: IdPath, ctx: Ctx) -> Alert:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.read(conn, ctx, alert_id)

    @post("/{alert_id:int}/acknowledge", status_code=200, opt=access("alert.acknowledge", CASE_WRITERS))
    async def acknowledge(self, request: AnyRequest, alert_id: IdPath, ctx: Ctx) -> Alert:
        """I have seen it and I am on it: the alert stops escalating."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.acknowledge(conn, ctx, alert_id, resources.clock.now())

    @post("/{alert_id:int}/resolve", status_code=200, opt=access("alert.resolve", CASE_WRITERS))
    async def resolve(
        self, request: AnyRequest, alert_id: IdPath, data: JSONBody[Resolution], ctx: Ctx
    ) -> Alert:
        """Close the alert with an outcome and a note saying what was found. A strap tamper or an
        opened case is closed in the tracking core too, so the next one alerts again."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            alert = await service.resolve(conn, ctx, alert_id, data, resources.clock.now())
        await service.clear_in_tracking(resources, alert)
        return alert
