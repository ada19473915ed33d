"""Monitoring orders, renewals, devices and zones through the HTTP API, and what reaches the
tracking core: the law's rules are 422s naming the rule, and every change is in force at the
device's next upload."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from tracking.contract import DeviceConfig
from tracking.ingest import Ingest

from casemgr.auth.principal import MfaState, Role
from casemgr.errors import Forbidden
from casemgr.monitoring.publisher import TrackingLink
from casemgr.redis_client import create_redis
from casemgr.resources import Resources
from tests.conftest import World

NOW = datetime.now(UTC)


def order_body(days: int = 60, **changes: Any) -> dict[str, Any]:
    return {
        "reason_code": "court_curfew",
        "legal_basis": "judgment (2026) 17",
        "assessment_ref": "risk assessment 2026-11",
        "starts_at": (NOW - timedelta(hours=1)).isoformat(),
        "ends_at": (NOW - timedelta(hours=1) + timedelta(days=days)).isoformat(),
    } | changes


def circle_zone(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "exclusion",
        "label": "victim's street",
        "shape": {"type": "circle", "centre": [121.47, 31.23], "radius_m": 150},
        "buffer_m": 20,
    } | changes


async def new_cc_case(owner: asyncpg.Connection, world: World) -> int:
    """A fresh active community-corrections case on off1's caseload (c1), with no order."""
    person = await owner.fetchval(
        "INSERT INTO persons (full_name, sex, birth_date, org_unit_id) "
        "VALUES ('M', 'male', '1990-01-01', $1) RETURNING id",
        world.units["c1"].id,
    )
    case_id: int = await owner.fetchval(
        "INSERT INTO cases (person_id, program, status, org_unit_id, officer_id) "
        "VALUES ($1, 'community_corrections', 'active', $2, $3) RETURNING id",
        person,
        world.units["c1"].id,
        world.accounts["off1"].id,
    )
    return case_id


async def published(resources: Resources, device_id: str) -> DeviceConfig | None:
    keys = resources.tracking.keyspace.device(device_id)
    blob = await resources.redis.get(keys.blob)
    return None if blob is None else msgspec.msgpack.decode(blob, type=DeviceConfig)


async def test_an_order_is_requested_approved_fitted_with_a_device_and_zoned_and_tracking_follows(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any, resources: Resources
) -> None:
    case_id = await new_cc_case(owner, world)
    officer, approver = await login_as("off1"), await login_as("sup_d1")
    requested = await client.post(f"/cases/{case_id}/monitoring-orders", json=order_body(), headers=officer)
    assert requested.status_code == 201, requested.text
    order = requested.json()
    assert (order["status"], order["in_force"]) == ("requested", False)
    device_id = f"D-{case_id}"
    registered = await client.post(
        "/devices",
        json={"id": device_id, "org_unit_id": world.units["o1"].id, "reporting_interval_s": 30},
        headers=approver,
    )
    assert registered.status_code == 201, registered.text
    secret = registered.json()["secret"]
    config = await published(resources, device_id)
    assert config is not None and config.order_id is None  # known to tracking, but not tracked
    fitted = await client.post(
        f"/monitoring-orders/{order['id']}/device", json={"device_id": device_id}, headers=officer
    )
    assert fitted.status_code == 200, fitted.text
    approved = await client.post(
        f"/monitoring-orders/{order['id']}/approve", json={"note": "ok"}, headers=approver
    )
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["in_force"]) == ("active", True)
    config = await published(resources, device_id)
    assert config is not None and (config.order_id, config.case_id) == (order["id"], case_id)
    assert config.org_unit_id == world.units["c1"].id and config.interval_s == 30
    before = config.version
    zone = await client.post(f"/monitoring-orders/{order['id']}/zones", json=circle_zone(), headers=officer)
    assert zone.status_code == 201, zone.text
    config = await published(resources, device_id)
    assert (
        config is not None and config.version > before and [z.id for z in config.zones] == [zone.json()["id"]]
    )
    # The device reports with the secret it was given, against the published configuration.
    ingest = Ingest(
        redis=resources.redis,
        scripts=resources.tracking.scripts,
        keyring=resources.keyring,
        keyspace=resources.tracking.keyspace,
    )
    ping = {
        "device_id": device_id,
        "seq": 1,
        "fix_time": NOW.isoformat(),
        "latitude": 31.23,
        "longitude": 121.47,
        "accuracy_m": 5,
    }
    reply = await ingest.upload(
        device_id=device_id,
        authorization=f"Bearer {secret}",
        signature=None,
        content_type="application/json",
        body=msgspec.json.encode(ping),
    )
    assert reply.accepted == 1
    read = await client.get(
        f"/monitoring-orders/{order['id']}", headers=await login_as("off1", purpose="review")
    )
    assert read.status_code == 200
    assert (read.json()["device_id"], [z["label"] for z in read.json()["zones"]]) == (
        device_id,
        ["victim's street"],
    )
    # Ending the order stops tracking at once.
    ended = await client.post(
        f"/monitoring-orders/{order['id']}/end", json={"reason": "lifted"}, headers=officer
    )
    assert ended.status_code == 200 and ended.json()["device_id"] is None
    config = await published(resources, device_id)
    assert config is not None and config.order_id is None
    with pytest.raises(Forbidden):
        await ingest.upload(
            device_id=device_id,
            authorization=f"Bearer {secret}",
            signature=None,
            content_type="application/json",
            body=msgspec.json.encode(ping | {"seq": 2}),
        )


@pytest.mark.parametrize(
    ("body", "rule", "field"),
    [
        (order_body(days=91), "at_most_90_days", "ends_at"),
        (order_body(reason_code="because_we_can"), "legal_reason_required", "reason_code"),
        (order_body(days=-1), "ends_after_start", "ends_at"),
        (order_body(time_zone="Mars/Olympus"), "known_time_zone", "time_zone"),
    ],
)
async def test_an_order_that_breaks_a_rule_is_a_422_naming_it(
    client: httpx.AsyncClient,
    world: World,
    owner: asyncpg.Connection,
    login_as: Any,
    body: dict[str, Any],
    rule: str,
    field: str,
) -> None:
    case_id = await new_cc_case(owner, world)
    response = await client.post(
        f"/cases/{case_id}/monitoring-orders", json=body, headers=await login_as("off1")
    )
    assert response.status_code == 422, response.text
    assert response.json()["rule"] == rule
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_only_community_corrections_cases_under_active_supervision_are_monitored(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any
) -> None:
    response = await client.post(
        f"/cases/{world.cases['smi_o1']}/monitoring-orders",
        json=order_body(),
        headers=await login_as("off1c"),
    )
    assert (response.status_code, response.json()["rule"]) == (422, "community_corrections_only")
    case_id = await new_cc_case(owner, world)
    await owner.execute("UPDATE cases SET status = 'suspended' WHERE id = $1", case_id)
    response = await client.post(
        f"/cases/{case_id}/monitoring-orders", json=order_body(), headers=await login_as("off1")
    )
    assert (response.status_code, response.json()["rule"]) == (422, "case_not_active")


async def test_an_order_is_approved_by_a_district_supervisor_who_did_not_ask_for_it(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any, resources: Resources
) -> None:
    case_id = await new_cc_case(owner, world)
    asked = await client.post(
        f"/cases/{case_id}/monitoring-orders", json=order_body(), headers=await login_as("sup_d1")
    )
    order_id = asked.json()["id"]
    own = await client.post(
        f"/monitoring-orders/{order_id}/approve", json={}, headers=await login_as("sup_d1")
    )
    assert (own.status_code, own.json()["rule"]) == (422, "four_eyes")
    by_officer = await client.post(
        f"/monitoring-orders/{order_id}/approve", json={}, headers=await login_as("off1")
    )
    assert by_officer.status_code == 403
    # A supervisor of an office, below district level, may not approve either.
    office_supervisor = await owner.fetchval(
        "INSERT INTO accounts (username, display_name, role, org_unit_id, password_hash) "
        "VALUES ($1, 'office sup', 'supervisor', $2, 'x') RETURNING id",
        f"sup.o1.{case_id}",
        world.units["o1"].id,
    )
    session = await resources.sessions.issue(
        account_id=office_supervisor,
        role=Role.SUPERVISOR,
        org_unit_id=world.units["o1"].id,
        scope=world.units["o1"].path,
        mfa=MfaState.PASSED,
    )
    below = await client.post(
        f"/monitoring-orders/{order_id}/approve",
        json={},
        headers={"Authorization": f"Bearer {session.token}"},
    )
    assert (below.status_code, below.json()["detail"]) == (
        403,
        "monitoring is approved by a supervisor at district level or above",
    )
    rejected = await client.post(
        f"/monitoring-orders/{order_id}/reject", json={"note": "no"}, headers=await login_as("sup_city")
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    again = await client.post(
        f"/monitoring-orders/{order_id}/approve", json={}, headers=await login_as("sup_city")
    )
    assert again.status_code == 409


async def test_a_renewal_adds_at_most_90_days_on_a_new_assessment_and_moves_the_end_tracking_knows(
    client: httpx.AsyncClient, world: World, login_as: Any, resources: Resources
) -> None:
    order_id = world.orders["cc_o1"]
    officer, approver = await login_as("off1"), await login_as("sup_d1")
    read = await client.get(
        f"/monitoring-orders/{order_id}", headers=await login_as("off1", purpose="renewal")
    )
    ends_at = datetime.fromisoformat(read.json()["ends_at"])
    pending = read.json()["renewals"][0]
    # The world's order has a renewal waiting already: decide it first (rejected).
    await client.post(
        f"/monitoring-orders/{order_id}/renewals/{pending['id']}/reject", json={}, headers=approver
    )
    too_long = {
        "assessment_ref": "reassessment 2027-01",
        "new_ends_at": (ends_at + timedelta(days=91)).isoformat(),
    }
    response = await client.post(f"/monitoring-orders/{order_id}/renewals", json=too_long, headers=officer)
    assert (response.status_code, response.json()["rule"]) == (422, "at_most_90_days")
    reused = {"assessment_ref": "assessment 1", "new_ends_at": (ends_at + timedelta(days=30)).isoformat()}
    response = await client.post(f"/monitoring-orders/{order_id}/renewals", json=reused, headers=officer)
    assert (response.status_code, response.json()["rule"]) == (422, "new_assessment_required")
    good = {
        "assessment_ref": "reassessment 2027-01",
        "new_ends_at": (ends_at + timedelta(days=90)).isoformat(),
    }
    response = await client.post(f"/monitoring-orders/{order_id}/renewals", json=good, headers=officer)
    assert response.status_code == 201, response.text
    renewal_id = response.json()["id"]
    own = await client.post(
        f"/monitoring-orders/{order_id}/renewals/{renewal_id}/approve", json={}, headers=officer
    )
    assert own.status_code == 403  # officers never approve
    approved = await client.post(
        f"/monitoring-orders/{order_id}/renewals/{renewal_id}/approve", json={}, headers=approver
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    read = await client.get(
        f"/monitoring-orders/{order_id}", headers=await login_as("off1", purpose="renewal")
    )
    assert datetime.fromisoformat(read.json()["ends_at"]) == ends_at + timedelta(days=90)
    config = await published(resources, world.devices["cc_o1"])
    assert config is not None and config.ends_at_ms == int((ends_at + timedelta(days=90)).timestamp() * 1000)


def ring(n: int) -> list[list[float]]:
    points = [
        [121.47 + 0.01 * math.cos(2 * math.pi * i / n), 31.23 + 0.01 * math.sin(2 * math.pi * i / n)]
        for i in range(n)
    ]
    return [*points, points[0]]


@pytest.mark.parametrize(
    ("zone", "field", "message"),
    [
        ({"shape": {"type": "Polygon", "coordinates": [ring(501)]}}, "shape.coordinates", "at most 500"),
        (
            {
                "shape": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [0.02, 0.01], [0.02, 0], [0, 0.02], [0, 0]]],
                }
            },
            "shape.coordinates",
            "intersects itself",
        ),
        ({"shape": {"type": "Polygon", "coordinates": [ring(5)[:-1]]}}, "shape.coordinates", "not closed"),
        ({"shape": {"type": "circle", "centre": [200, 31], "radius_m": 10}}, "shape.centre[0]", "<= 180"),
        ({"schedule": [{"days": [8], "start": "21:00", "end": "06:00"}]}, "schedule[0].days[0]", "<= 7"),
        ({"grace_minutes": 15}, "grace_minutes", "with a schedule"),
    ],
)
async def test_a_zone_that_cannot_be_used_is_a_422_naming_the_field(
    client: httpx.AsyncClient, world: World, login_as: Any, zone: dict[str, Any], field: str, message: str
) -> None:
    response = await client.post(
        f"/monitoring-orders/{world.orders['cc_o1']}/zones",
        json=circle_zone(**zone),
        headers=await login_as("off1"),
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field]
    assert message in errors[0]["message"]


async def test_a_polygon_zone_with_a_curfew_schedule_is_published_and_removing_it_republishes(
    client: httpx.AsyncClient, world: World, login_as: Any, resources: Resources
) -> None:
    officer = await login_as("off1")
    home = {
        "kind": "inclusion",
        "label": "home",
        "shape": {"type": "Polygon", "coordinates": [ring(12)]},
        "schedule": [{"days": [1, 2, 3, 4, 5], "start": "21:00", "end": "06:00"}],
        "grace_minutes": 15,
    }
    created = await client.post(
        f"/monitoring-orders/{world.orders['cc_o1']}/zones", json=home, headers=officer
    )
    assert created.status_code == 201, created.text
    config = await published(resources, world.devices["cc_o1"])
    assert config is not None
    assert [(z.kind, z.grace_minutes, bool(z.schedule)) for z in config.zones] == [
        ("exclusion", 0, False),
        ("inclusion", 15, True),
    ]
    removed = await client.delete(f"/zones/{created.json()['id']}", headers=officer)
    assert removed.status_code == 204
    config = await published(resources, world.devices["cc_o1"])
    assert config is not None and [z.kind for z in config.zones] == ["exclusion"]


async def test_a_change_committed_while_redis_is_away_reaches_tracking_from_the_outbox(
    client: httpx.AsyncClient, world: World, login_as: Any, resources: Resources, owner: asyncpg.Connection
) -> None:
    working = resources.tracking
    broken_redis = create_redis("redis://127.0.0.1:1/0")  # nothing listens on port 1
    resources.tracking = TrackingLink.create(broken_redis, working.keyspace)
    try:
        response = await client.post(
            f"/monitoring-orders/{world.orders['cc_o1']}/zones",
            json=circle_zone(label="new school"),
            headers=await login_as("off1"),
        )
        assert response.status_code == 201, response.text  # committed; publication failed
    finally:
        resources.tracking = working
        await broken_redis.aclose()
    device_id = world.devices["cc_o1"]
    assert await owner.fetchval("SELECT count(*) FROM tracking_outbox WHERE device_id = $1", device_id) == 1
    config = await published(resources, device_id)
    assert config is None or response.json()["id"] not in [z.id for z in config.zones]  # not yet
    published_count = await working.drain_outbox(
        resources.pool, resources.clock.now() + timedelta(seconds=10), older_than=timedelta(seconds=5)
    )
    assert published_count >= 1
    config = await published(resources, device_id)
    assert config is not None and response.json()["id"] in [z.id for z in config.zones]
    assert await owner.fetchval("SELECT count(*) FROM tracking_outbox WHERE device_id = $1", device_id) == 0
