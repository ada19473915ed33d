"""The console's pages. Thin: each one resolves the cookie's session, calls the same services as
the API (which authorize, filter by scope and audit), and renders a template."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from casemgr import audit
from casemgr.alerts import service as alerts
from casemgr.alerts.push import EventStream, LiveStream
from casemgr.alerts.schemas import Outcome, Resolution
from casemgr.auth import service as auth
from casemgr.auth.principal import CASE_READERS, CASE_WRITERS, MfaState, Role
from casemgr.cases import service as cases
from casemgr.console.i18n import Translator
from casemgr.console.pages import (
    PURPOSES,
    SECURITY_HEADERS,
    AnyRequest,
    Form,
    Visitor,
    admit,
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
from casemgr.errors import CasemgrError, NotFound
from casemgr.handovers import service as handovers
from casemgr.handovers.schemas import Acceptance, Rejection
from casemgr.monitoring import service as monitoring
from casemgr.monitoring.schemas import ZoneCreate
from casemgr.people import service as people
from casemgr.records import service as records
from casemgr.resources import Resources
from casemgr.statistics import service as statistics
from casemgr.supervision import service as supervision
from casemgr.supervision.schemas import ContactIn, ContactKind, ContactOutcome
from casemgr.web.access import public, request_id_of, resources_of
from casemgr.wire import IdPath

RECORDERS = CASE_WRITERS | {Role.HEALTH_WORKER}


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
    async def caseload(self, request: AnyRequest, q: FromQuery[str] = "") -> Response[Any]:
        visitor = await admit(request, CASE_READERS)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        query = q.strip()[:100]
        async with scoped_transaction(resources_of(request).pool, principal) as conn:
            listing = await cases.list_cases(conn, ctx, program=None, mine=False, after=None, limit=100)
            found = await people.search(conn, ctx, query, after=None, limit=50) if query else None
        items = listing.items
        if found is not None:
            # A search by name, pinyin initials or ID number narrows the caseload to those people.
            wanted = {person.id for person in found.items}
            items = [item for item in items if item.person_id in wanted]
        return page(
            request, "caseload.html", items=items, query=query, csrf=csrf_token(token), principal=principal
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
        except CasemgrError as e:
            return failed(request, token, e)
        records = await _case_records(resources, ctx, case_id)
        # The detail as the caller may see it (the sensitive fields only when cleared for them).
        detail = msgspec.to_builtins(case.detail) if case.detail is not None else {}
        detail.pop("program", None)
        return page(
            request,
            "case.html",
            case=case,
            detail=detail,
            events=events,
            purpose=purpose,
            with_map=may(principal, CASE_WRITERS),
            may_record=may(principal, RECORDERS),
            contact_kinds=list(ContactKind),
            contact_outcomes=list(ContactOutcome),
            now_local=datetime.now(ZoneInfo(resources.settings.console_time_zone)).strftime("%Y-%m-%dT%H:%M"),
            **records,
            csrf=csrf_token(token),
        )

    @get("/alerts", opt=public("console.alerts"))
    async def alert_inbox(self, request: AnyRequest) -> Response[Any]:
        visitor = await admit(request, CASE_READERS)
        if not isinstance(visitor, Visitor):
            return visitor
        principal, token, ctx = visitor.principal, visitor.token, visitor.ctx
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, principal) as conn:
            listing = await alerts.inbox(
                conn, ctx, alerts.InboxQuery(), after=None, limit=200, now=resources.clock.now()
            )
        # Newest first, the open ones on top: what an officer must act on.
        items = sorted(listing.items, key=lambda a: (a.status == "resolved", -a.raised_at.timestamp()))
        return page(request, "alerts.html", items=items, outcomes=list(Outcome), csrf=csrf_token(token))

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
        return Redirect("/console/alerts", status_code=303, headers=SECURITY_HEADERS)

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
        try:
            async with scoped_transaction(resources.pool, principal) as conn:
                editable = await monitoring.order_in_force(conn, ctx, case_id, resources.clock.now())
        except CasemgrError:
            editable = None  # read-only for who may read but not change the case
        return page(
            request,
            "map.html",
            case_id=case_id,
            purpose=purpose,
            editable=editable is not None,
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

    @post("/cases/{case_id:int}/zones", status_code=303, opt=public("console.zone_add"))
    async def add_zone(self, request: AnyRequest, case_id: IdPath, data: Form) -> Response[Any]:
        """A zone drawn on the map (a centre and a radius, or the corners of a polygon), added to
        the order in force and published to the tracking core, as the API's POST does."""
        visitor = await admit(request, CASE_WRITERS, data)
        if not isinstance(visitor, Visitor):
            return visitor
        token, ctx = visitor.token, visitor.ctx
        try:
            zone = _zone_from_form(data)
        except (ValueError, msgspec.ValidationError):
            return page(request, "error.html", status=422, message="zone.invalid", csrf=csrf_token(token))
        resources = resources_of(request)

        async def work(conn: Any, now: Any, staged: Any) -> Any:
            order_id = await monitoring.order_in_force(conn, ctx, case_id, now)
            if order_id is None:
                raise NotFound("this case has no monitoring order in force")
            return await monitoring.add_zone(conn, ctx, order_id, zone, now, staged)

        try:
            await monitoring.change_then_publish(resources, ctx, work)
        except CasemgrError as e:
            return failed(request, token, e, invalid="zone.invalid")
        purpose = data.get("purpose", "")
        return Redirect(
            f"/console/cases/{case_id}/map?purpose={purpose if purpose in PURPOSES else PURPOSES[1]}",
            status_code=303,
            headers=SECURITY_HEADERS,
        )

    @post("/cases/{case_id:int}/contacts", status_code=303, opt=public("console.contact_record"))
    async def record_contact(self, request: AnyRequest, case_id: IdPath, data: Form) -> Response[Any]:
        """A home visit, an office report, a call: recorded as the API records it (one that took
        place closes the due contact and plans the next)."""
        visitor = await admit(request, RECORDERS, data)
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
        purpose = data.get("purpose", "")
        return Redirect(
            f"/console/cases/{case_id}?purpose={purpose if purpose in PURPOSES else PURPOSES[1]}",
            status_code=303,
            headers=SECURITY_HEADERS,
        )

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


def _zone_from_form(data: dict[str, str]) -> ZoneCreate:
    """The form's drawing as the API's zone: "lon,lat" and a radius, or "lon,lat;lon,lat;..."."""

    def point(text: str) -> tuple[float, float]:
        lon, lat = (float(part) for part in text.split(","))
        return lon, lat

    if data.get("shape") == "polygon":
        corners = [point(p) for p in data.get("points", "").split(";") if p.strip()]
        if len(corners) < 3:
            raise ValueError("a polygon needs three corners")
        shape: dict[str, Any] = {"type": "Polygon", "coordinates": [[*corners, corners[0]]]}
    else:
        lon, lat = point(data.get("centre", ""))
        shape = {"type": "circle", "centre": [lon, lat], "radius_m": float(data.get("radius_m", "0"))}
    return msgspec.convert(
        {"kind": data.get("kind"), "label": data.get("label", "").strip(), "shape": shape}, ZoneCreate
    )


async def _case_records(resources: Resources, ctx: RequestContext, case_id: int) -> dict[str, Any]:
    """The contacts, notes and documents of a case file, each read (and audited) as the API reads
    it; a part the caller's role may not read is left out, as the API would refuse it."""
    parts: dict[str, Any] = {"contacts": None, "notes": None, "documents": None}
    for name in parts:
        try:
            async with scoped_transaction(resources.pool, ctx.caller) as conn:
                if name == "contacts":
                    parts[name] = await supervision.contacts(conn, ctx, case_id, 20)
                elif name == "notes":
                    parts[name] = await records.notes(conn, ctx, case_id, None, 20)
                else:
                    parts[name] = await records.documents(conn, ctx, case_id)
        except CasemgrError:
            continue
    return parts
