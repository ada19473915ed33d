"""Referrals from institutions and transfers between offices, with deadlines and alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from casemgr.clock import ManualClock
from casemgr.resources import Resources
from casemgr.supervision.engine import run_once
from tests.conftest import World, id_number_for

PURPOSE = "intake"


def referral(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": "court",
        "source_name": "East District Court",
        "target_org_unit_id": world.units["o1"].id,
        "program": "community_corrections",
        "person": {
            "full_name": f"Referred {uuid.uuid4().hex[:6]}",
            "sex": "male",
            "birth_date": "1988-08-08",
        },
        "detail": {
            "program": "community_corrections",
            "sentence_type": "probation",
            "court": "East District Court",
            "judgment_date": "2026-11-01",
            "judgment_effective_date": "2026-11-10",
        },
        "anchor_date": "2026-11-10",
    }
    body.update(overrides)
    return body


async def run_engine(resources: Resources, at: datetime) -> None:
    await run_once(resources.pool, at, escalate_after=timedelta(hours=72))


async def test_a_court_referral_is_due_ten_days_after_the_judgment_and_becomes_a_case_on_acceptance(
    client: httpx.AsyncClient,
    world: World,
    login_as: Any,
    owner: asyncpg.Connection,
    clock: ManualClock,
) -> None:
    sent = await client.post("/handovers/referrals", json=referral(world), headers=await login_as("sup_d1"))
    assert sent.status_code == 201, sent.text
    handover = sent.json()
    assert handover["deadline"] == "2026-11-21T00:00:00Z"  # all of the 10th day after the 10th
    accepted = await client.post(
        f"/handovers/{handover['id']}/accept",
        json={"note": "reported in person"},
        headers=await login_as("off1"),
    )
    assert accepted.status_code == 200, accepted.text
    case_id = accepted.json()["intake_case_id"]
    case = (await client.get(f"/cases/{case_id}", headers=await login_as("off1", purpose=PURPOSE))).json()
    assert (case["status"], case["org_unit_id"], case["officer_id"]) == (
        "pending_intake",
        world.units["o1"].id,
        world.accounts["off1"].id,
    )
    assert case["detail"]["sentence_type"] == "probation"
    intake = await owner.fetchrow("SELECT * FROM tasks WHERE case_id = $1 AND kind = 'intake_due'", case_id)
    assert intake["due_at"] == datetime(2026, 11, 21, tzinfo=UTC) and intake["status"] == "open"
    again = await client.post(f"/handovers/{handover['id']}/accept", json={}, headers=await login_as("off1"))
    assert again.status_code == 409
    await client.post(
        f"/cases/{case_id}/transitions",
        json={"to": "active", "note": "registered"},
        headers=await login_as("off1"),
    )
    assert await owner.fetchval("SELECT status FROM tasks WHERE id = $1", intake["id"]) == "done"


async def test_a_referral_left_pending_past_its_deadline_raises_a_missed_intake_alert_in_scope_only(
    client: httpx.AsyncClient,
    world: World,
    login_as: Any,
    resources: Resources,
) -> None:
    sent = (
        await client.post(
            "/handovers/referrals",
            headers=await login_as("sup_d1"),
            json=referral(world, anchor_date=None, deadline="2026-01-05T00:00:00Z"),
        )
    ).json()
    await run_engine(resources, datetime(2026, 1, 6, tzinfo=UTC))
    await run_engine(resources, datetime(2026, 1, 7, tzinfo=UTC))

    async def missed(caller: str) -> list[dict[str, Any]]:
        response = await client.get(
            "/alerts", params={"kind": "missed_intake"}, headers=await login_as(caller)
        )
        assert response.status_code == 200
        return [a for a in response.json()["items"] if a["handover_id"] == sent["id"]]

    [alert] = await missed("off1")
    assert (alert["severity"], alert["status"], alert["org_unit_id"]) == (
        "serious",
        "new",
        world.units["o1"].id,
    )
    assert "full_name" not in str(alert["details"])
    for outsider in ("off3", "sup_d2", "health_d1"):
        assert await missed(outsider) == [], outsider


async def test_an_accepted_referral_not_taken_on_by_the_deadline_raises_an_alert_on_the_case(
    client: httpx.AsyncClient,
    world: World,
    login_as: Any,
    resources: Resources,
) -> None:
    sent = (
        await client.post(
            "/handovers/referrals",
            headers=await login_as("sup_d1"),
            json=referral(world, anchor_date="2026-02-01"),
        )
    ).json()
    case_id = (
        await client.post(f"/handovers/{sent['id']}/accept", json={}, headers=await login_as("off1"))
    ).json()["intake_case_id"]
    await run_engine(resources, datetime(2026, 2, 20, tzinfo=UTC))
    alerts = (
        await client.get("/alerts", params={"kind": "missed_intake"}, headers=await login_as("off1"))
    ).json()
    assert case_id in [a["case_id"] for a in alerts["items"]]


async def test_a_must_meet_release_creates_a_pickup_task_for_the_release_date(
    client: httpx.AsyncClient,
    world: World,
    login_as: Any,
    owner: asyncpg.Connection,
) -> None:
    sent = (
        await client.post(
            "/handovers/referrals",
            headers=await login_as("off1"),
            json=referral(
                world,
                source="prison",
                source_name="North Prison",
                program="released_prisoner",
                anchor_date="2026-12-15",
                detail={
                    "program": "released_prisoner",
                    "prison": "North Prison",
                    "release_date": "2026-12-15",
                    "must_meet": True,
                    "resettlement_needs": ["housing", "employment"],
                },
            ),
        )
    ).json()
    assert sent["deadline"] == "2027-01-15T00:00:00Z"  # released prisoners: 30 days
    case_id = (
        await client.post(f"/handovers/{sent['id']}/accept", json={}, headers=await login_as("off1"))
    ).json()["intake_case_id"]
    pickup = await owner.fetchrow("SELECT * FROM tasks WHERE case_id = $1 AND kind = 'pickup'", case_id)
    assert pickup["due_at"] == datetime(2026, 12, 15, tzinfo=UTC)


async def test_a_referral_of_a_registered_person_links_to_them_by_id_number(
    client: httpx.AsyncClient,
    world: World,
    login_as: Any,
) -> None:
    id_number = id_number_for("1988-08-08", male=True)
    person = {"full_name": "Known Person", "sex": "male", "birth_date": "1988-08-08", "id_number": id_number}
    registered = await client.post(
        "/people", json={**person, "org_unit_id": world.units["o3"].id}, headers=await login_as("off3")
    )
    assert registered.status_code == 201
    sent = (
        await client.post(
            "/handovers/referrals", headers=await login_as("off1"), json=referral(world, person=person)
        )
    ).json()
    duplicate = await client.post(f"/handovers/{sent['id']}/accept", json={}, headers=await login_as("off1"))
    assert duplicate.status_code == 409
    existing = duplicate.json()["existing_person_id"]
    assert existing == registered.json()["id"]
    wrong = await client.post(
        f"/handovers/{sent['id']}/accept",
        json={"person_id": world.persons["cc_o1"]},
        headers=await login_as("off1"),
    )
    assert wrong.status_code == 422
    linked = await client.post(
        f"/handovers/{sent['id']}/accept", json={"person_id": existing}, headers=await login_as("off1")
    )
    assert linked.status_code == 200, linked.text


async def test_a_rejection_needs_a_reason_and_ends_the_handover(
    client: httpx.AsyncClient,
    world: World,
    login_as: Any,
) -> None:
    sent = (
        await client.post("/handovers/referrals", headers=await login_as("sup_d1"), json=referral(world))
    ).json()
    no_reason = await client.post(f"/handovers/{sent['id']}/reject", json={}, headers=await login_as("off1"))
    assert no_reason.status_code == 422
    rejected = await client.post(
        f"/handovers/{sent['id']}/reject",
        json={"note": "lives in another city"},
        headers=await login_as("off1"),
    )
    assert (rejected.json()["status"], rejected.json()["decision_note"]) == (
        "rejected",
        "lives in another city",
    )
    assert (
        await client.post(f"/handovers/{sent['id']}/accept", json={}, headers=await login_as("off1"))
    ).status_code == 409


async def test_a_transfer_moves_the_case_only_when_the_receiving_office_accepts(
    client: httpx.AsyncClient,
    world: World,
    login_as: Any,
    owner: asyncpg.Connection,
) -> None:
    case_id = world.cases["cc_o1"]
    sent = await client.post(
        f"/cases/{case_id}/transfer",
        headers=await login_as("off1"),
        json={"target_org_unit_id": world.units["o2"].id, "note": "moved to Harbour"},
    )
    assert sent.status_code == 201, sent.text
    assert (
        await owner.fetchval("SELECT org_unit_id FROM cases WHERE id = $1", case_id) == world.units["c1"].id
    )
    twice = await client.post(
        f"/cases/{case_id}/transfer",
        headers=await login_as("off1"),
        json={"target_org_unit_id": world.units["o2"].id, "note": "again"},
    )
    assert twice.status_code == 409
    incoming = (await client.get("/handovers", headers=await login_as("off2"))).json()["items"]
    outgoing = (
        await client.get("/handovers", params={"direction": "outgoing"}, headers=await login_as("off1"))
    ).json()["items"]
    assert sent.json()["id"] in [h["id"] for h in incoming] and sent.json()["id"] in [
        h["id"] for h in outgoing
    ]
    assert sent.json()["id"] not in [
        h["id"] for h in (await client.get("/handovers", headers=await login_as("sup_d2"))).json()["items"]
    ]
    not_theirs = await client.post(
        f"/handovers/{sent.json()['id']}/accept", json={}, headers=await login_as("off1")
    )
    assert not_theirs.status_code == 403
    accepted = await client.post(
        f"/handovers/{sent.json()['id']}/accept", json={"note": "welcome"}, headers=await login_as("off2")
    )
    assert accepted.status_code == 200, accepted.text
    row = await owner.fetchrow("SELECT org_unit_id, officer_id FROM cases WHERE id = $1", case_id)
    assert (row["org_unit_id"], row["officer_id"]) == (world.units["o2"].id, world.accounts["off2"].id)
    gone = await client.patch(
        f"/cases/{case_id}", json={"shared_with_police": False}, headers=await login_as("off1")
    )
    assert gone.status_code == 403
    events = (
        await client.get(f"/cases/{case_id}/events", headers=await login_as("off2", purpose=PURPOSE))
    ).json()
    assert [e["kind"] for e in events][-2:] == ["transfer_sent", "transfer_accepted"]


async def test_a_rejected_transfer_leaves_the_case_where_it_was(
    client: httpx.AsyncClient,
    world: World,
    login_as: Any,
    owner: asyncpg.Connection,
) -> None:
    case_id = world.cases["drug_o2"]
    sent = (
        await client.post(
            f"/cases/{case_id}/transfer",
            headers=await login_as("sup_d1"),
            json={"target_org_unit_id": world.units["o3"].id, "note": "moving"},
        )
    ).json()
    same_unit = await client.post(
        f"/cases/{case_id}/transfer",
        headers=await login_as("sup_d1"),
        json={"target_org_unit_id": world.units["o2"].id, "note": "x"},
    )
    assert same_unit.status_code == 422
    rejected = await client.post(
        f"/handovers/{sent['id']}/reject", json={"note": "not our area"}, headers=await login_as("off3")
    )
    assert rejected.status_code == 200
    assert (
        await owner.fetchval("SELECT org_unit_id FROM cases WHERE id = $1", case_id) == world.units["o2"].id
    )
