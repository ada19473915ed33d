"""The authorization matrix, generated from the route table: what tests/integration/test_route_walk.py
does for single objects (every route as nobody, as every wrong role, and every object route
on an object outside the caller's scope), done here for what returns many objects: every list,
search, export and statistics route and the live alert stream, as a caller of every role
inside district d1, must return nothing of district d2. And mass assignment: fields a role
may not change, sent anyway, change nothing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from casemgr.alerts.push import LiveStream
from casemgr.app import create_app
from casemgr.auth.principal import Role
from casemgr.config import Settings
from casemgr.resources import Resources
from tests.conftest import World
from tests.integration.test_alert_stream import OpenStream, caller
from tests.integration.test_alert_stream import live as live  # a fixture, used by name
from tests.integration.test_route_walk import CALLER_IN_D1, SELF_SERVICE, routes


@pytest.fixture
def app(settings: Settings, resources: Resources) -> Litestar:
    return create_app(settings, resources=resources)


def many_object_routes(app: Litestar) -> list[tuple[str, dict[str, Any]]]:
    """GET routes without an object in their path: lists, search, exports, statistics."""
    return [
        (path, opt)
        for method, path, opt in routes(app)
        if method == "GET"
        and "{" not in path
        and not opt.get("public")
        and (method, path) not in SELF_SERVICE
        and path != "/alerts/stream"  # a stream never ends: walked below through the feed
    ]


def leaks(body: Any, world: World, units: tuple[str, ...] = ("d2", "o3")) -> list[str]:
    """What of district d2 (or of other units) a response holds: an object of its units, or the
    name of its person."""
    d2_units = {world.units[name].id for name in units}
    d2_name = "Person cc_o3 " if units == ("d2", "o3") else "Person cc_o1 "
    found: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("org_unit_id", "target_org_unit_id", "unit_id") and item in d2_units:
                    found.append(f"{where}.{key}={item}")
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")
        elif isinstance(value, str) and d2_name in value:
            found.append(f"{where}: {value[:60]}")

    walk(body, "$")
    return found


async def test_no_list_search_export_or_statistics_shows_a_caller_anything_outside_their_scope(
    app: Litestar, client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    walked: list[str] = []
    shows_own_units = 0  # the control: the same check finds the caller's own units and people
    for path, opt in many_object_routes(app):
        for role in sorted(opt["roles"]):
            headers = await login_as(CALLER_IN_D1[role], purpose="authorization matrix")
            params = {"q": "Person"} if path == "/people" else None
            response = await client.get(path, headers=headers, params=params)
            assert response.status_code == 200, (path, role, response.text)
            if response.headers["content-type"].startswith("text/csv"):
                assert "cc_o3" not in response.text, (path, role)
                shows_own_units += "cc_o1" in response.text
            else:
                assert leaks(response.json(), world) == [], (path, role)
                shows_own_units += bool(leaks(response.json(), world, units=("d1", "o1", "o2", "c1")))
            walked.append(f"{role} GET {path}")
    # Lists of cases, people, tasks, alerts, handovers, documents...; the count keeps the walk honest.
    assert len(walked) >= 25, walked
    assert shows_own_units >= len(walked) // 3, shows_own_units


async def test_the_live_alert_stream_of_every_role_holds_nothing_outside_its_scope(
    live: Resources, world: World, login_as: Any
) -> None:
    """From the start of the feed (Last-Event-ID 0): the world's alerts are on cases of d1 and d2."""
    resources = live
    for role in sorted({Role.OFFICER, Role.SUPERVISOR, Role.HEALTH_WORKER, Role.POLICE_LIAISON}):
        ctx, token = await caller(resources, login_as, CALLER_IN_D1[role])
        stream = OpenStream(LiveStream(resources, ctx, token, 0))
        frames: list[bytes] = []
        try:
            async with asyncio.timeout(1.0):
                async for frame in stream:
                    frames.append(frame)
        except TimeoutError:
            pass
        finally:
            await stream.aclose()
        events = [
            json.loads(line.removeprefix("data: "))
            for frame in frames
            for line in frame.decode().split("\r\n")
            if line.startswith("data: ")
        ]
        if role in (Role.OFFICER, Role.SUPERVISOR):  # the world's alerts are on their cases
            assert events, f"the {role}'s stream sent nothing: the walk proves nothing"
        assert all(e.get("case_id") != world.cases["cc_o3"] for e in events), (role, events)
        assert leaks(events, world) == [], role


# (caller, method, path template, body, SQL that reads what must not change, its parameter)
MASS_ASSIGNMENTS: list[tuple[str, str, str, dict[str, Any], str, str]] = [
    # A case moves between units only by a transfer, with its handover.
    (
        "off1",
        "PATCH",
        "/cases/{cc_o1}",
        {"org_unit_id": "{o3}"},
        "SELECT org_unit_id FROM cases WHERE id = $1",
        "cc_o1",
    ),
    (
        "sup_d1",
        "PATCH",
        "/cases/{cc_o1}",
        {"org_unit_id": "{o3}"},
        "SELECT org_unit_id FROM cases WHERE id = $1",
        "cc_o1",
    ),
    # Only a supervisor reassigns a case.
    (
        "off1",
        "PATCH",
        "/cases/{cc_o1}",
        {"officer_id": "{off1c}"},
        "SELECT officer_id FROM cases WHERE id = $1",
        "cc_o1",
    ),
    # A status changes only through the lifecycle's transitions.
    (
        "off1",
        "PATCH",
        "/cases/{cc_o1}",
        {"status": "closed"},
        "SELECT status::text FROM cases WHERE id = $1",
        "cc_o1",
    ),
    # The level of supervision (the risk grade of a case) is not the police's to set.
    (
        "police_d1",
        "PATCH",
        "/cases/{cc_o1}",
        {"supervision_level": "strict"},
        "SELECT supervision_level::text FROM cases WHERE id = $1",
        "cc_o1",
    ),
    # The clinical risk grade of a mental-illness case is not the police's either.
    (
        "police_d1",
        "PUT",
        "/cases/{smi_o1}/detail",
        {"program": "severe_mental_illness", "risk_grade": 5},
        "SELECT details::text FROM cases WHERE id = $1",
        "smi_o1",
    ),
    # An order's end moves only by an approved renewal: not by its requester, nor in the request.
    (
        "off1",
        "POST",
        "/monitoring-orders/{order_cc_o1}/renewals/{renewal_cc_o1}/approve",
        {},
        "SELECT ends_at::text FROM monitoring_orders WHERE id = $1",
        "order_cc_o1",
    ),
    (
        "off1",
        "PATCH",
        "/monitoring-orders/{order_cc_o1}",
        {"ends_at": "2031-01-01T00:00:00Z"},
        "SELECT ends_at::text FROM monitoring_orders WHERE id = $1",
        "order_cc_o1",
    ),
    (
        "off1",
        "POST",
        "/cases/{cc_o1}/monitoring-orders",
        {
            "reason_code": "court_curfew",
            "legal_basis": "x",
            "assessment_ref": "a-1",
            "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-02-01T00:00:00Z",
            "status": "active",
            "decided_by": "{off1}",
        },
        "SELECT count(*)::text FROM monitoring_orders WHERE case_id = $1",
        "cc_o1",
    ),
    # Roles and units of accounts are an admin's to set, within the admin's scope.
    (
        "sup_d1",
        "PATCH",
        "/accounts/{off1}",
        {"role": "admin"},
        "SELECT role::text FROM accounts WHERE id = $1",
        "off1",
    ),
    (
        "admin_d1",
        "PATCH",
        "/accounts/{off1}",
        {"org_unit_id": "{o3}"},
        "SELECT org_unit_id::text FROM accounts WHERE id = $1",
        "off1",
    ),
]


def _ids(world: World) -> dict[str, int]:
    ids: dict[str, int] = {}
    ids.update({name: unit.id for name, unit in world.units.items()})
    ids.update({name: account.id for name, account in world.accounts.items()})
    ids.update(world.cases)
    ids.update({f"order_{name}": order for name, order in world.orders.items()})
    ids.update({f"renewal_{name}": renewal for name, renewal in world.renewals.items()})
    return ids


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("caller_name", "method", "template", "body", "query", "target"),
    MASS_ASSIGNMENTS,
    ids=[f"{c}-{m}-{t}-{','.join(b) or 'nothing'}" for c, m, t, b, _, _ in MASS_ASSIGNMENTS],
)
async def test_a_field_the_caller_may_not_set_is_refused_and_nothing_changes(
    client: httpx.AsyncClient,
    owner: asyncpg.Connection,
    world: World,
    login_as: Any,
    caller_name: str,
    method: str,
    template: str,
    body: dict[str, Any],
    query: str,
    target: str,
) -> None:
    ids = _ids(world)
    path = template.format(**ids)
    before = await owner.fetchval(query, ids[target])
    headers = await login_as(caller_name, purpose="mass assignment")
    response = await client.request(method, path, headers=headers, json=_fill(body, ids))
    assert 400 <= response.status_code < 500, response.text
    assert await owner.fetchval(query, ids[target]) == before
