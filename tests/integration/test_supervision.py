"""Contact plans, contacts and the due-task engine, on a clock the tests move."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from casemgr.clock import ManualClock
from casemgr.resources import Resources
from casemgr.supervision.engine import run_once
from tests.conftest import World

ESCALATE_AFTER = timedelta(hours=72)


async def run_engine(resources: Resources, clock: ManualClock) -> None:
    await run_once(resources.pool, clock.now(), escalate_after=ESCALATE_AFTER)


async def open_tasks(
    owner: asyncpg.Connection, case_id: int, kind: str = "contact_due"
) -> list[asyncpg.Record]:
    return await owner.fetch(
        "SELECT * FROM tasks WHERE case_id = $1 AND kind = $2 AND status = 'open'", case_id, kind
    )


async def activate(owner: asyncpg.Connection, case_id: int, clock: ManualClock) -> None:
    await owner.execute("UPDATE cases SET activated_at = $2 WHERE id = $1", case_id, clock.now())


async def activate_and_plan(
    owner: asyncpg.Connection, resources: Resources, clock: ManualClock, case_id: int
) -> None:
    """The case became active now, and the engine has planned its tasks."""
    await activate(owner, case_id, clock)
    await run_engine(resources, clock)


async def test_the_engine_plans_the_next_contact_from_program_and_level_once_however_often_it_runs(
    resources: Resources, clock: ManualClock, world: World, owner: asyncpg.Connection
) -> None:
    case_id = world.cases["cc_o3"]  # community corrections, ordinary: every 14 days
    await activate(owner, case_id, clock)
    for _ in range(3):
        await run_engine(resources, clock)
    [task] = await open_tasks(owner, case_id)
    assert task["due_at"] == clock.now() + timedelta(days=14)
    [assessment] = await open_tasks(owner, case_id, "assessment_due")  # the world's, not a second one
    assert assessment["id"] == world.tasks["cc_o3"]


@pytest.mark.parametrize(("risk_grade", "days"), [(0, 90), (2, 30), (4, 14)])
async def test_mental_illness_cases_are_contacted_by_risk_grade(
    resources: Resources,
    clock: ManualClock,
    world: World,
    owner: asyncpg.Connection,
    risk_grade: int,
    days: int,
) -> None:
    case_id = world.cases["smi_o1"]
    await activate(owner, case_id, clock)
    await owner.execute(
        "UPDATE cases SET details = jsonb_build_object('program', 'severe_mental_illness', "
        "'risk_grade', $2::int) WHERE id = $1",
        case_id,
        risk_grade,
    )
    await run_engine(resources, clock)
    [task] = await open_tasks(owner, case_id)
    assert task["due_at"] == clock.now() + timedelta(days=days)


async def test_a_contact_that_took_place_closes_the_due_task_and_plans_the_next(
    client: httpx.AsyncClient,
    resources: Resources,
    clock: ManualClock,
    world: World,
    owner: asyncpg.Connection,
    login_as: Any,
) -> None:
    case_id = world.cases["cc_o1"]
    await activate_and_plan(owner, resources, clock, case_id)
    [due] = await open_tasks(owner, case_id)
    clock.advance(timedelta(days=10))
    absent = await client.post(
        f"/cases/{case_id}/contacts",
        headers=await login_as("off1"),
        json={
            "kind": "home_visit",
            "outcome": "absent_without_reason",
            "occurred_at": (clock.now() - timedelta(hours=2)).isoformat(),
        },
    )
    assert absent.status_code == 201, absent.text
    assert [t["id"] for t in await open_tasks(owner, case_id)] == [due["id"]]  # an absence is no contact
    visit_time = clock.now() - timedelta(hours=1)
    visited = await client.post(
        f"/cases/{case_id}/contacts",
        headers=await login_as("off1"),
        json={
            "kind": "home_visit",
            "outcome": "complied",
            "occurred_at": visit_time.isoformat(),
            "note": "at home, working",
        },
    )
    assert visited.status_code == 201
    [following] = await open_tasks(owner, case_id)
    assert following["id"] != due["id"] and following["due_at"] == visit_time + timedelta(days=14)
    assert await owner.fetchval("SELECT status FROM tasks WHERE id = $1", due["id"]) == "done"
    future = await client.post(
        f"/cases/{case_id}/contacts",
        headers=await login_as("off1"),
        json={
            "kind": "phone",
            "outcome": "attended",
            "occurred_at": (clock.now() + timedelta(days=1)).isoformat(),
        },
    )
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "occurred_at"
    listed = await client.get(
        f"/cases/{case_id}/contacts", headers=await login_as("sup_d1", purpose="review")
    )
    assert [c["outcome"] for c in listed.json()] == ["complied", "absent_without_reason"]


async def test_a_late_task_is_marked_overdue_then_escalated_to_the_nearest_supervisor_once(
    client: httpx.AsyncClient,
    resources: Resources,
    clock: ManualClock,
    world: World,
    owner: asyncpg.Connection,
    login_as: Any,
) -> None:
    case_id = world.cases["cc_o1"]  # in community c1 under office o1 of district d1
    await activate_and_plan(owner, resources, clock, case_id)
    clock.advance(timedelta(days=15))
    await run_engine(resources, clock)
    [task] = await open_tasks(owner, case_id)
    assert task["overdue_at"] == clock.now() and task["escalated_at"] is None
    clock.advance(timedelta(hours=71))
    await run_engine(resources, clock)
    assert (await open_tasks(owner, case_id))[0]["escalated_at"] is None
    clock.advance(timedelta(hours=2))
    await run_engine(resources, clock)
    [task] = await open_tasks(owner, case_id)
    assert task["escalated_to"] == world.accounts["sup_d1"].id
    escalated_at = task["escalated_at"]
    clock.advance(timedelta(days=3))
    await run_engine(resources, clock)
    assert (await open_tasks(owner, case_id))[0]["escalated_at"] == escalated_at  # never twice
    inbox = await client.get(
        "/tasks", params={"status": "escalated", "escalated_to_me": "true"}, headers=await login_as("sup_d1")
    )
    # The case's contact and the world's assessments of district d1, all late by now.
    escalated = {t["id"]: t for t in inbox.json()["items"]}
    assert task["id"] in escalated and world.tasks["cc_o1"] in escalated
    assert {t["escalated_to"] for t in escalated.values()} == {world.accounts["sup_d1"].id}
    overdue = await client.get(
        "/tasks", params={"status": "overdue", "mine": "true"}, headers=await login_as("off1")
    )
    assert task["id"] in [t["id"] for t in overdue.json()["items"]]
    elsewhere = await client.get("/tasks", params={"status": "overdue"}, headers=await login_as("sup_d2"))
    assert task["id"] not in [t["id"] for t in elsewhere.json()["items"]]


async def test_suspending_a_case_cancels_its_planned_tasks(
    client: httpx.AsyncClient,
    resources: Resources,
    clock: ManualClock,
    world: World,
    owner: asyncpg.Connection,
    login_as: Any,
) -> None:
    case_id = world.cases["cc_o1"]
    await activate_and_plan(owner, resources, clock, case_id)
    moved = await client.post(
        f"/cases/{case_id}/transitions",
        headers=await login_as("off1"),
        json={"to": "suspended", "note": "in hospital for a month"},
    )
    assert moved.status_code == 200
    await run_engine(resources, clock)
    assert await open_tasks(owner, case_id) == []
    assert await open_tasks(owner, case_id, "assessment_due") == []


async def test_completing_an_assessment_plans_the_next_and_a_due_contact_needs_a_contact(
    client: httpx.AsyncClient,
    resources: Resources,
    clock: ManualClock,
    world: World,
    owner: asyncpg.Connection,
    login_as: Any,
) -> None:
    case_id = world.cases["cc_o1"]
    await activate_and_plan(owner, resources, clock, case_id)
    done = await client.post(
        f"/tasks/{world.tasks['cc_o1']}/complete",
        headers=await login_as("off1"),
        json={"note": "risk unchanged, needs: employment"},
    )
    assert done.status_code == 200 and done.json()["status"] == "done"
    [following] = await open_tasks(owner, case_id, "assessment_due")
    assert following["due_at"] == clock.now() + timedelta(days=90)
    [contact_task] = await open_tasks(owner, case_id)
    refused = await client.post(
        f"/tasks/{contact_task['id']}/complete", headers=await login_as("off1"), json={"note": "x"}
    )
    assert refused.status_code == 409
    again = await client.post(
        f"/tasks/{world.tasks['cc_o1']}/complete", headers=await login_as("off1"), json={"note": "again"}
    )
    assert again.status_code == 409


async def test_only_a_city_level_admin_changes_the_contact_plan_and_new_tasks_follow_it(
    client: httpx.AsyncClient,
    resources: Resources,
    clock: ManualClock,
    world: World,
    owner: asyncpg.Connection,
    login_as: Any,
) -> None:
    rule = {"program": "released_prisoner", "band": "ordinary", "interval_days": 45}
    district = await client.put("/contact-plan", json=rule, headers=await login_as("admin_d1"))
    assert district.status_code == 403
    try:
        city = await client.put("/contact-plan", json=rule, headers=await login_as("admin"))
        assert city.status_code == 200
        assert {"program": "released_prisoner", "band": "ordinary", "interval_days": 45} in city.json()
        bad = await client.put(
            "/contact-plan", json={**rule, "band": "risk_9"}, headers=await login_as("admin")
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "band"
    finally:
        await owner.execute(
            "UPDATE contact_plan SET interval_days = 90 "
            "WHERE program = 'released_prisoner' AND band = 'ordinary'"
        )
