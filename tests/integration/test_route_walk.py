"""Walk every route of the application: as nobody, as the wrong role, as the wrong scope.

Each denial must be a 401 or 403 problem *and* leave an audit row with the route's action,
outcome "denied" and the reason, under the request id the response carried.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from casemgr.app import create_app
from casemgr.auth.principal import STAFF_ROLES, Role
from casemgr.config import Settings
from casemgr.resources import Resources
from tests.conftest import PASSWORD, World, audit_rows

# A caller in district d1 reaching for objects in district d2 (or the city above it).
# role -> world account of that role inside d1
CALLER_IN_D1 = {
    Role.ADMIN: "admin_d1",
    Role.AUDITOR: "auditor_d1",
    Role.SUPERVISOR: "sup_d1",
    Role.OFFICER: "off1",
    Role.HEALTH_WORKER: "health_d1",
    Role.POLICE_LIAISON: "police_d1",
}
# Routes open to every role that act only on the caller's own session or account, list only
# what lies inside the caller's own scope, or show reference data holding nothing personal
# (the contact plan): no wrong role or scope exists for them.
SELF_SERVICE = {
    ("POST", "/auth/totp/enrol"),
    ("POST", "/auth/totp/verify"),
    ("POST", "/auth/logout"),
    ("GET", "/auth/me"),
    ("GET", "/contact-plan"),
    ("GET", "/handovers/intake-deadlines"),
    ("POST", "/auth/password"),
    ("GET", "/org-units"),
}


def routes(app: Litestar) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                if method in ("HEAD", "OPTIONS"):
                    continue
                found.append((method, route.path_format, handler.opt))
    return sorted(found, key=lambda r: (r[1], r[0]))


def out_of_scope_path(path: str, world: World) -> str:
    """Fill the path's ids with objects that lie in district d2, outside a d1 caller's scope."""
    targets = {
        "case_id": world.cases["cc_o3"],
        "account_id": world.accounts["off3"].id,
        "unit_id": world.units["d2"].id,
        "person_id": world.persons["cc_o3"],
        "task_id": world.tasks["cc_o3"],
        "handover_id": world.handovers["o3"],
        "document_id": world.documents["cc_o3"],
        "referral_id": world.service_referrals["cc_o3"],
        "order_id": world.orders["cc_o3"],
        "renewal_id": world.renewals["cc_o3"],
        "zone_id": world.zones["cc_o3"],
        "device_id": world.devices["cc_o3"],
        "alert_id": world.alerts["cc_o3"],
        "absence_id": world.absences["cc_o3"],
        "enforcement_id": world.enforcement["cc_o3"],
        "endpoint_id": world.endpoints["d2"],
    }
    return re.sub(r"\{(\w+)\}", lambda m: str(targets[m[1]]), path)


def out_of_scope_body(method: str, path: str, world: World) -> dict[str, Any] | None:
    d2, o3 = world.units["d2"].id, world.units["o3"].id
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/org-units"): {"parent_id": d2, "kind": "office", "name": "x", "code": "zz-x"},
        ("PATCH", "/org-units/{unit_id}"): {"name": "renamed"},
        ("POST", "/accounts"): {
            "username": "intruder.x",
            "display_name": "x",
            "role": "officer",
            "org_unit_id": o3,
            "password": PASSWORD,
        },
        ("PATCH", "/accounts/{account_id}"): {"display_name": "renamed"},
        ("POST", "/accounts/{account_id}/password"): {"new_password": PASSWORD + "!"},
        ("POST", "/cases"): {
            "person": {"full_name": "x", "sex": "male", "birth_date": "1990-01-01"},
            "program": "drug_rehab",
            "org_unit_id": o3,
        },
        ("PATCH", "/cases/{case_id}"): {"shared_with_police": True},
        ("PUT", "/cases/{case_id}/detail"): {
            "program": "community_corrections",
            "sentence_type": "probation",
            "court": "x",
            "judgment_date": "2026-01-01",
        },
        ("POST", "/cases/{case_id}/transitions"): {"to": "suspended", "note": "x"},
        ("POST", "/cases/{case_id}/contacts"): {
            "kind": "phone",
            "outcome": "attended",
            "occurred_at": "2026-01-01T10:00:00Z",
        },
        ("POST", "/tasks/{task_id}/complete"): {"note": "done"},
        ("PUT", "/contact-plan"): {"program": "drug_rehab", "band": "strict", "interval_days": 10},
        ("POST", "/handovers/referrals"): {
            "source": "court",
            "source_name": "x",
            "target_org_unit_id": o3,
            "program": "drug_rehab",
            "person": {"full_name": "x", "sex": "male", "birth_date": "1990-01-01"},
            "anchor_date": "2026-01-01",
        },
        ("POST", "/cases/{case_id}/transfer"): {"target_org_unit_id": world.units["o1"].id, "note": "x"},
        ("POST", "/handovers/{handover_id}/accept"): {},
        ("POST", "/handovers/{handover_id}/reject"): {"note": "x"},
        ("POST", "/cases/{case_id}/service-referrals"): {"service": "housing", "provider": "x"},
        ("PATCH", "/service-referrals/{referral_id}"): {"status": "referred"},
        ("POST", "/cases/{case_id}/notes"): {"body": "x"},
        ("POST", "/people"): {"full_name": "x", "sex": "male", "birth_date": "1990-01-01", "org_unit_id": o3},
        ("PATCH", "/people/{person_id}"): {"aliases": ["x"]},
        ("POST", "/cases/{case_id}/monitoring-orders"): {
            "reason_code": "court_curfew",
            "legal_basis": "x",
            "assessment_ref": "x",
            "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-02-01T00:00:00Z",
        },
        ("POST", "/monitoring-orders/{order_id}/approve"): {},
        ("POST", "/monitoring-orders/{order_id}/reject"): {},
        ("POST", "/monitoring-orders/{order_id}/end"): {"reason": "x"},
        ("POST", "/monitoring-orders/{order_id}/renewals"): {
            "assessment_ref": "x",
            "new_ends_at": "2030-01-01T00:00:00Z",
        },
        ("POST", "/monitoring-orders/{order_id}/renewals/{renewal_id}/approve"): {},
        ("POST", "/monitoring-orders/{order_id}/renewals/{renewal_id}/reject"): {},
        ("POST", "/monitoring-orders/{order_id}/device"): {"device_id": world.devices["cc_o1"]},
        ("POST", "/monitoring-orders/{order_id}/zones"): {
            "kind": "exclusion",
            "label": "x",
            "shape": {"type": "circle", "centre": [121.4, 31.2], "radius_m": 100},
        },
        ("POST", "/devices"): {"id": "intruder-1", "org_unit_id": o3},
        ("POST", "/alerts/{alert_id}/resolve"): {"outcome": "false_alarm", "note": "checked"},
        ("POST", "/cases/{case_id}/enforcement"): {"kind": "warning", "note": "a warning"},
        ("POST", "/notification-endpoints"): {
            "org_unit_id": o3,
            "channel": "sms",
            "target": "+8613800000001",
        },
        ("POST", "/enforcement/{enforcement_id}/reject"): {"note": "not enough"},
        ("POST", "/monitoring-orders/{order_id}/absences"): {
            "zone_ids": [world.zones["cc_o3"]],
            "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-01-02T00:00:00Z",
            "reason": "travel",
        },
        ("POST", "/people/{person_id}/addresses"): {
            "kind": "residence",
            "address": "somewhere",
            "valid_from": "2030-01-01",
        },
    }
    return bodies.get((method, path))


@pytest.fixture
def app(settings: Settings, resources: Resources) -> Litestar:
    return create_app(settings, resources=resources)


async def assert_denied_and_audited(
    owner: asyncpg.Connection, response: httpx.Response, status: int, action: str, reason: str
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    rows = await audit_rows(owner, response.headers["x-request-id"])
    assert [(r["action"], r["outcome"], r["reason"]) for r in rows] == [(action, "denied", reason)]


async def test_every_route_refuses_an_unauthenticated_caller_and_audits_it(
    app: Litestar, client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    walked = 0
    for method, path, opt in routes(app):
        if opt.get("public"):
            continue
        response = await client.request(method, out_of_scope_path(path, world))
        await assert_denied_and_audited(owner, response, 401, opt["action"], "missing_token")
        walked += 1
    assert walked >= 20


async def test_every_route_refuses_a_caller_of_the_wrong_role_and_audits_it(
    app: Litestar,
    client: httpx.AsyncClient,
    owner: asyncpg.Connection,
    world: World,
    login_as: Any,
) -> None:
    walked = 0
    for method, path, opt in routes(app):
        if opt.get("public"):
            continue
        wrong_roles = sorted(STAFF_ROLES - opt["roles"])
        if not wrong_roles:
            # Open to every role: either self-service, or an object route whose scope the
            # next test walks.
            assert (method, path) in SELF_SERVICE or "{" in path
            continue
        for role in wrong_roles:
            headers = await login_as(CALLER_IN_D1[role], purpose="route walk")
            response = await client.request(method, out_of_scope_path(path, world), headers=headers)
            await assert_denied_and_audited(owner, response, 403, opt["action"], "role_not_allowed")
            walked += 1
    assert walked >= 40


async def test_every_object_route_refuses_a_caller_outside_its_scope_and_audits_it(
    app: Litestar,
    client: httpx.AsyncClient,
    owner: asyncpg.Connection,
    world: World,
    login_as: Any,
) -> None:
    walked = 0
    for method, path, opt in routes(app):
        if opt.get("public") or (method, path) in SELF_SERVICE:
            continue
        body = out_of_scope_body(method, path, world)
        if "{" not in path and body is None:
            # Lists and exports: they return only what lies in scope (tested elsewhere).
            continue
        for role in sorted(opt["roles"]):
            headers = await login_as(CALLER_IN_D1[role], purpose="route walk")
            # The upload takes its file name from the query string.
            params = {"filename": "x.pdf"} if path.endswith("/documents") and method == "POST" else None
            response = await client.request(
                method, out_of_scope_path(path, world), headers=headers, json=body, params=params
            )
            await assert_denied_and_audited(owner, response, 403, opt["action"], "out_of_scope")
            walked += 1
    assert walked >= 15


async def test_a_route_that_declares_no_roles_is_closed_to_everyone(
    settings: Settings,
    resources: Resources,
    owner: asyncpg.Connection,
    world: World,
    login_as: Any,
) -> None:
    from litestar import get

    @get("/undeclared", opt={"action": "test.undeclared"})
    async def undeclared() -> str:
        return "should never be served"

    app = create_app(settings, resources=resources)
    app.register(undeclared)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for name in ("admin", "sup_city", "off1"):
            response = await client.get("/undeclared", headers=await login_as(name))
            await assert_denied_and_audited(owner, response, 403, "test.undeclared", "route_closed")
