"""The console's pages. Thin: each one resolves the cookie's session, calls the same services as
the API (which authorize, filter by scope and audit), and renders a template."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from casemgr import audit
from casemgr.alerts import service as alerts
from casemgr.alerts.push import EventStream, LiveStream
from casemgr.alerts.schemas import Alert, AlertStatus, Outcome, Resolution
from casemgr.auth import service as auth
from casemgr.auth.principal import CASE_READERS, CASE_RECORDERS, CASE_WRITERS, MfaState, Role
from casemgr.cases import service as cases
from casemgr.console.i18n import Translator
from casemgr.console.pages import (
    PURPOSES,
    SECURITY_HEADERS,
    AnyRequest,
    Form,
    Visitor,
    admit,
    back_to_case,
    caller_of,
    csrf_token,
    failed,
    language_of,
    may,
    page,
    same_origin,
    session_cookie,
)
from casemgr.context import RequestContext
from casemgr.db import scoped_transaction
from casemgr.errors import CasemgrError
from casemgr.handovers import service as handovers
from casemgr.handovers.schemas import Acceptance, Rejection
from casemgr.monitoring import service as monitoring
from casemgr.monitoring.schemas import MAX_ORDER_DAYS
from casemgr.people import service as people
from casemgr.records import service as records
from casemgr.resources import Resources
from casemgr.statistics import service as statistics
from casemgr.supervision import service as supervision
from casemgr.supervision.schemas import ContactIn, ContactKind, ContactOutcome, TaskState
from casemgr.web.access import public, request_id_of, resources_of
from casemgr.wire import IdPath

# What an officer must act on, the new ones first.
OPEN_ALERTS = (AlertStatus.NEW, AlertStatus.ACKNOWLEDGED)


class ConsoleController(Controller):
    path = "/console"
    include_in_schema = False

    @get("/login", opt=public("console.login_page"))
    async def login_page(self, request: AnyRequest) -> Template:
        return page(request, "login.html", need_code=False, failed=False)

    @post("/login", status_code=303, opt=public("console.login", login=True))
    async def login(self, request: AnyRequest, data: Form) -> Response[Any]:
        if not same_origin(request):
            return page(request, "login.html", status=403, need_code=False, failed=True)
        resources = resources_of(request)
        ctx = RequestContext(request_id=request_id_of(request.scope))
        async with scoped_transaction(resources.pool, None) as conn:
            outcome = await auth.authenticate(
                conn, resources, ctx, data.get("username", ""), data.get("password", "")
            )
        if isinstance(outcome, auth.Refused):
            return page(request, "login.html", status=401, need_code=False, failed=True)
        issued = await resources.sessions.issue(
            account_id=outcome.account_id,
            role=outcome.role,
            org_unit_id=outcome.org_unit_id,
            scope=outcome.scope,
            mfa=outcome.mfa,
        )
        if outcome.mfa in (MfaState.PENDING, MfaState.ENROL):
            code = data.get("code", "").strip()
            if outcome.mfa is MfaState.ENROL or not code:
                await resources.sessions.revoke(issued.principal)
                return page(request, "login.html", status=401, need_code=True, failed=bool(code))
            pending = RequestContext(request_id=ctx.request_id, principal=issued.principal)
            async with scoped_transaction(resources.pool, issued.principal) as conn:
                verified = await auth.verify_totp(conn, resources, pending, code)
            await resources.sessions.revoke(issued.principal)
            if isinstance(verified, auth.Refused):
                return page(request, "login.html", status=401, need_code=True, failed=True)
            issued = await resources.sessions.issue(
                account_id=verified.account_id,
                role=verified.role,
                org_unit_id=verified.org_unit_id,
                scope=verified.scope,
                mfa=verified.mfa,
            )
        return Redirect(
            "/console/cases",
            status_code=303,
            headers=SECURITY_HEADERS,
            cookies=[session_cookie(request, issued.token, resources.settings.session_absolute_seconds)],
        )

    @post("/logout", status_code=303, opt=public("console.logout"))
    async def logout(self, request: AnyRequest, data: Form) -> Response[Any]:
        caller = await caller_of(request)
        if caller is not None:
            principal, token = caller
            if not hmac.compare_digest(data.get("csrf", ""), csrf_token(token)):
                return page(request, "error.html", status=403, message="error.forbidden")
            await resources_of(request).sessions.revoke(principal)
        return Redirect(
            "/console/login",
            status_code=303,
            headers=SECURITY_HEADERS,
            cookies=[session_cookie(request, "", max_age=0)],
        )

    @get("/", opt=public("console.home"))
    async def home(self, request: AnyRequest) -> Redirect:
        return Redirect("/console/cases", headers=SECURITY_HEADERS)

    @get("/cases", opt=public("console.caseload"))
    async def caseload(
        self, request: AnyRequest, q: FromQuery[str] = "", after: FromQuery[int | None] = None
    ) -> Response[Any]:
        visitor = await admit(request, CASE_READERS)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        query = q.strip()[:100]
        async with scoped_transaction(resources_of(request).pool, principal) as conn:
            # A search by name, pinyin initials or ID number narrows the caseload to those people.
            found = await people.search(conn, ctx, query, after=None, limit=100) if query else None
            listing = await cases.list_cases(
                conn,
                ctx,
                program=None,
                mine=False,
                after=after,
                limit=200,
                person_ids=None if found is None else [person.id for person in found.items],
            )
        items = listing.items
        return page(
            request,
            "caseload.html",
            items=items,
            query=query,
            next_after=listing.next_after,
            csrf=csrf_token(token),
            principal=principal,
        )

    @get("/cases/{case_id:int}", opt=public("console.case"))
    async def case_file(
        self, request: AnyRequest, case_id: IdPath, purpose: FromQuery[str] = ""
    ) -> Response[Any]:
        visitor = await admit(request, CASE_READERS)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        if purpose not in PURPOSES:
            # Opening a file is audited with its purpose: ask first.
            return page(request, "purpose.html", case_id=case_id, purposes=PURPOSES, csrf=csrf_token(token))
        translate = Translator(language_of(request))
        ctx = RequestContext(
            request_id=request_id_of(request.scope), principal=principal, purpose=translate(purpose)
        )
        resources = resources_of(request)
        try:
            async with scoped_transaction(resources.pool, principal) as conn:
                case = await cases.read(conn, ctx, resources.keyring, case_id)
                events = await cases.events(conn, ctx, case_id)
                # The person's other programs (a released prisoner also in drug rehabilitation):
                # the cases of theirs the caller may see, so none is missed between offices.
                theirs = await cases.list_cases(
                    conn,
                    ctx,
                    program=None,
                    mine=False,
                    after=None,
                    limit=20,
                    person_ids=[case.person.id],
                    action="case.list_of_person",
                )
        except CasemgrError as e:
            return failed(request, token, e)
        records = await _case_records(resources, ctx, case_id)
        # The detail as the caller may see it (the sensitive fields only when cleared for them).
        detail = msgspec.to_builtins(case.detail) if case.detail is not None else {}
        detail.pop("program", None)
        now = datetime.now(ZoneInfo(resources.settings.console_time_zone)).replace(second=0, microsecond=0)
        return page(
            request,
            "case.html",
            case=case,
            detail=detail,
            events=events,
            other_cases=[other for other in theirs.items if other.id != case.id],
            purpose=purpose,
            with_map=may(principal, CASE_WRITERS),
            may_record=may(principal, CASE_RECORDERS),
            may_approve=principal.role is Role.SUPERVISOR,
            account_id=principal.account_id,
            contact_kinds=list(ContactKind),
            contact_outcomes=list(ContactOutcome),
            now_local=now.strftime("%Y-%m-%dT%H:%M"),
            order_end_local=(now + timedelta(days=MAX_ORDER_DAYS - 1)).strftime("%Y-%m-%dT%H:%M"),
            **records,
            csrf=csrf_token(token),
        )

    @get("/alerts", opt=public("console.alerts"))
    async def alert_inbox(
        self, request: AnyRequest, show: FromQuery[str] = "open", case_id: FromQuery[int | None] = None
    ) -> Response[Any]:
        """What an officer must act on: the open alerts (new ones first), newest first; or the
        latest resolved ones. Optionally of one case."""
        visitor = await admit(request, CASE_READERS)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        resources = resources_of(request)
        show = "resolved" if show == "resolved" else "open"
        statuses = (AlertStatus.RESOLVED,) if show == "resolved" else OPEN_ALERTS
        async with scoped_transaction(resources.pool, principal) as conn:
            items, more = await _newest_alerts(conn, ctx, statuses, case_id, 200, resources.clock.now())
        return page(
            request,
            "alerts.html",
            items=items,
            show=show,
            case_id=case_id,
            more=more,
            outcomes=list(Outcome),
            csrf=csrf_token(token),
        )

    @post("/alerts/{alert_id:int}/acknowledge", status_code=303, opt=public("console.alert_acknowledge"))
    async def acknowledge(self, request: AnyRequest, alert_id: IdPath, data: Form) -> Response[Any]:
        return await self._alert_step(request, alert_id, data, resolve=False)

    @post("/alerts/{alert_id:int}/resolve", status_code=303, opt=public("console.alert_resolve"))
    async def resolve(self, request: AnyRequest, alert_id: IdPath, data: Form) -> Response[Any]:
        return await self._alert_step(request, alert_id, data, resolve=True)

    async def _alert_step(
        self, request: AnyRequest, alert_id: int, data: dict[str, str], *, resolve: bool
    ) -> Response[Any]:
        visitor = await admit(request, CASE_WRITERS, data)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        resources = resources_of(request)
        try:
            async with scoped_transaction(resources.pool, principal) as conn:
                if resolve:
                    resolution = msgspec.convert(
                        {"outcome": data.get("outcome", ""), "note": data.get("note", "")}, Resolution
                    )
                    alert = await alerts.resolve(conn, ctx, alert_id, resolution, resources.clock.now())
                else:
                    alert = await alerts.acknowledge(conn, ctx, alert_id, resources.clock.now())
        except msgspec.ValidationError:
            return page(
                request, "error.html", status=422, message="alerts.resolve_invalid", csrf=csrf_token(token)
            )
        except CasemgrError as e:
            return failed(request, token, e)
        if resolve:
            await alerts.clear_in_tracking(resources, alert)
        of_case = data.get("case_id", "")
        back = f"/console/alerts?case_id={of_case}" if of_case.isdigit() else "/console/alerts"
        return Redirect(back, status_code=303, headers=SECURITY_HEADERS)

    @get("/alerts/stream", opt=public("console.alert_stream"))
    async def alert_stream(self, request: AnyRequest) -> Response[Any]:
        """The API's live stream (Server-Sent Events) on the console's cookie: a browser's
        EventSource sends cookies, not an Authorization header."""
        caller = await caller_of(request)
        if caller is None:
            return Response(b"", status_code=401, headers=SECURITY_HEADERS)
        principal, token = caller
        if not may(principal, CASE_READERS):
            return Response(b"", status_code=403, headers=SECURITY_HEADERS)
        resources = resources_of(request)
        ctx = RequestContext(request_id=request_id_of(request.scope), principal=principal)
        last = request.headers.get("last-event-id", "")
        async with scoped_transaction(resources.pool, principal) as conn:
            start = int(last) if last.isdigit() else await alerts.last_change(conn)
            await audit.record(conn, ctx, "alert.stream", object_type="alert")
        return EventStream(LiveStream(resources, ctx, token, start))

    @get("/dashboard", opt=public("console.dashboard"))
    async def dashboard(self, request: AnyRequest) -> Response[Any]:
        """The caller's unit in figures, per child unit and program (the API's /statistics)."""
        visitor = await admit(request, CASE_READERS)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, principal) as conn:
            figures = await statistics.compute(
                conn, ctx, org_unit_id=None, program=None, window_days=90, now=resources.clock.now()
            )
        return page(request, "dashboard.html", figures=figures, csrf=csrf_token(token))

    @get("/handovers", opt=public("console.handovers"))
    async def handover_inbox(self, request: AnyRequest) -> Response[Any]:
        """People handed over to the caller's units (from prison, court, hospital, another
        office), the nearest intake deadline first."""
        visitor = await admit(request, CASE_WRITERS)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, principal) as conn:
            listing = await handovers.list_handovers(
                conn, ctx, incoming=True, status=None, after=None, limit=200
            )
        items = sorted(listing.items, key=lambda h: (h.status != "pending", h.deadline))
        return page(request, "handovers.html", items=items, now=resources.clock.now(), csrf=csrf_token(token))

    @get("/cases/{case_id:int}/map", opt=public("console.map"))
    async def case_map_page(
        self, request: AnyRequest, case_id: IdPath, purpose: FromQuery[str] = ""
    ) -> Response[Any]:
        """Zones and the last day's track on a map that needs no tile server: the zones and the
        track are drawn on their own, over tiles only when CASEMGR_CONSOLE_TILE_URL names some."""
        visitor = await admit(request, CASE_WRITERS)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        if purpose not in PURPOSES:
            return page(
                request, "purpose.html", case_id=case_id, purposes=PURPOSES, csrf=csrf_token(token), map=True
            )
        resources = resources_of(request)
        now = resources.clock.now()
        try:
            async with scoped_transaction(resources.pool, principal) as conn:
                orders = await monitoring.orders_of_case(conn, ctx, case_id, now, whole=True)
        except CasemgrError as e:
            return failed(request, token, e)
        in_force = next((order for order in orders if order.in_force), None)
        try:
            async with scoped_transaction(resources.pool, principal) as conn:
                editable = await monitoring.order_in_force(conn, ctx, case_id, now) is not None
        except CasemgrError:
            editable = False  # read-only for who may read but not change the case
        return page(
            request,
            "map.html",
            case_id=case_id,
            purpose=purpose,
            zones=in_force.zones if in_force else [],
            editable=editable,
            source=f"/console/cases/{case_id}/map.json?purpose={purpose}",
            tiles=resources_of(request).settings.console_tile_url,
            csrf=csrf_token(token),
        )

    @get("/cases/{case_id:int}/map.json", opt=public("console.map_data"))
    async def case_map_data(
        self, request: AnyRequest, case_id: IdPath, purpose: FromQuery[str] = ""
    ) -> Response[Any]:
        caller = await caller_of(request)
        if caller is None or purpose not in PURPOSES:
            return Response(b"", status_code=401 if caller is None else 428, headers=SECURITY_HEADERS)
        principal, _ = caller
        if not may(principal, CASE_WRITERS):
            return Response(b"", status_code=403, headers=SECURITY_HEADERS)
        resources = resources_of(request)
        ctx = RequestContext(
            request_id=request_id_of(request.scope),
            principal=principal,
            purpose=Translator(language_of(request))(purpose),
        )
        try:
            async with scoped_transaction(resources.pool, principal) as conn:
                found = await monitoring.case_map(conn, ctx, case_id, resources.clock.now())
        except CasemgrError as e:
            return Response(b"", status_code=e.status, headers=SECURITY_HEADERS)
        return Response(msgspec.json.encode(found), media_type="application/json", headers=SECURITY_HEADERS)

    @post("/cases/{case_id:int}/contacts", status_code=303, opt=public("console.contact_record"))
    async def record_contact(self, request: AnyRequest, case_id: IdPath, data: Form) -> Response[Any]:
        """A home visit, an office report, a call: recorded as the API records it (one that took
        place closes the due contact and plans the next)."""
        visitor = await admit(request, CASE_RECORDERS, data)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        resources = resources_of(request)
        zone = ZoneInfo(resources.settings.console_time_zone)
        try:
            occurred = datetime.fromisoformat(data.get("occurred_at", "")).replace(tzinfo=zone)
            contact = msgspec.convert(
                {
                    "kind": data.get("kind"),
                    "outcome": data.get("outcome"),
                    "occurred_at": occurred,
                    "note": data.get("note", "").strip() or None,
                },
                ContactIn,
            )
        except (ValueError, msgspec.ValidationError):
            return page(request, "error.html", status=422, message="contact.invalid", csrf=csrf_token(token))
        try:
            async with scoped_transaction(resources.pool, principal) as conn:
                await supervision.record_contact(conn, ctx, case_id, contact, resources.clock.now())
        except CasemgrError as e:
            return failed(request, token, e, invalid="contact.invalid")
        return Redirect(back_to_case(case_id, data), status_code=303, headers=SECURITY_HEADERS)

    @post("/handovers/{handover_id:int}/accept", status_code=303, opt=public("console.handover_accept"))
    async def accept_handover(self, request: AnyRequest, handover_id: IdPath, data: Form) -> Response[Any]:
        """Take the person on: an officer accepting becomes the responsible officer; a referral
        becomes a case pending intake, a transfer moves the case (the handover service's rules)."""
        return await self._handover_step(request, handover_id, data, accept=True)

    @post("/handovers/{handover_id:int}/reject", status_code=303, opt=public("console.handover_reject"))
    async def reject_handover(self, request: AnyRequest, handover_id: IdPath, data: Form) -> Response[Any]:
        return await self._handover_step(request, handover_id, data, accept=False)

    async def _handover_step(
        self, request: AnyRequest, handover_id: int, data: dict[str, str], *, accept: bool
    ) -> Response[Any]:
        visitor = await admit(request, CASE_WRITERS, data)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        resources = resources_of(request)
        note = data.get("note", "").strip() or None
        try:
            async with scoped_transaction(resources.pool, principal) as conn:
                if accept:
                    await handovers.accept(
                        conn,
                        ctx,
                        resources.keyring,
                        handover_id,
                        Acceptance(note=note),
                        resources.clock.now(),
                    )
                else:
                    rejection = msgspec.convert({"note": note or ""}, Rejection)
                    await handovers.reject(conn, ctx, handover_id, rejection, resources.clock.now())
        except msgspec.ValidationError:
            return page(
                request, "error.html", status=422, message="handovers.note_needed", csrf=csrf_token(token)
            )
        except CasemgrError as e:
            return failed(request, token, e, refused="handovers.refused")
        return Redirect("/console/handovers", status_code=303, headers=SECURITY_HEADERS)


async def _case_records(resources: Resources, ctx: RequestContext, case_id: int) -> dict[str, Any]:
    """The parts of a case file beside the case itself (contacts, notes, documents, open tasks,
    open alerts, monitoring orders), each read and audited as the API reads it, each in its own
    transaction: a part the caller's role may not read is left out (None), as the API would
    refuse it, and the rest of the file still shows."""
    now = resources.clock.now()
    readers: dict[str, Callable[[asyncpg.Connection], Awaitable[Any]]] = {
        "contacts": lambda conn: supervision.contacts(conn, ctx, case_id, 20),
        "notes": lambda conn: records.notes(conn, ctx, case_id, None, 20),
        "documents": lambda conn: records.documents(conn, ctx, case_id),
        "tasks": lambda conn: supervision.list_tasks(
            conn,
            ctx,
            state=TaskState.OPEN,
            mine=False,
            escalated_to_me=False,
            org_unit_id=None,
            after=None,
            limit=50,
            case_id=case_id,
        ),
        "alerts": lambda conn: _newest_alerts(conn, ctx, OPEN_ALERTS, case_id, 50, now),
        "orders": lambda conn: monitoring.orders_of_case(conn, ctx, case_id, now, whole=True),
        "reasons": lambda conn: monitoring.reasons(conn),
    }
    parts: dict[str, Any] = dict.fromkeys(readers)
    for name, read in readers.items():
        if name in ("orders", "reasons") and ctx.caller.role not in CASE_WRITERS:
            continue  # the monitoring of a subject is for the officers who supervise them
        try:
            async with scoped_transaction(resources.pool, ctx.caller) as conn:
                parts[name] = await read(conn)
        except CasemgrError:
            continue
    if parts["tasks"] is not None:
        parts["tasks"] = parts["tasks"].items
    if parts["alerts"] is not None:
        parts["alerts"] = parts["alerts"][0]  # the file links to the inbox for the rest
    return parts


async def _newest_alerts(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    statuses: tuple[AlertStatus, ...],
    case_id: int | None,
    limit: int,
    now: datetime,
) -> tuple[list[Alert], bool]:
    """The newest `limit` alerts of each status in turn (optionally of one case), and whether
    any status had more."""
    found: list[Alert] = []
    more = False
    for status in statuses:
        query = alerts.InboxQuery(status=status, case_id=case_id)
        listing = await alerts.inbox(conn, ctx, query, after=None, limit=limit, now=now, newest_first=True)
        found.extend(listing.items)
        more = more or listing.next_after is not None
    return found, more
