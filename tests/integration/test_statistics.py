"""Statistics per unit and program, scoped to the caller, each figure opening its list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from casemgr.clock import ManualClock
from tests.conftest import World


def row(stats: dict[str, Any], unit_id: int, program: str) -> dict[str, Any]:
    [found] = [r for r in stats["rows"] if r["org_unit_id"] == unit_id and r["program"] == program]
    return found


async def test_a_supervisor_sees_their_district_and_each_office_by_program(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    response = await client.get("/statistics", headers=await login_as("sup_d1"))
    assert response.status_code == 200, response.text
    stats = response.json()
    d1, o1, o2 = world.units["d1"].id, world.units["o1"].id, world.units["o2"].id
    assert {r["org_unit_id"] for r in stats["rows"]} == {d1, o1, o2}
    assert row(stats, d1, "community_corrections")["total"] is True
    assert row(stats, d1, "community_corrections")["cases_by_status"]["active"]["value"] == 1
    assert row(stats, o1, "severe_mental_illness")["cases_by_status"]["active"]["value"] == 1
    assert row(stats, o2, "drug_rehab")["cases_by_level"]["ordinary"]["value"] == 1
    assert row(stats, o2, "community_corrections")["cases_by_status"]["active"]["value"] == 0
    # Nothing from district d2 is counted anywhere.
    assert sum(r["cases_by_status"]["active"]["value"] for r in stats["rows"] if r["total"]) == 3


async def test_every_figure_opens_the_list_behind_it(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    headers = await login_as("sup_d1")
    stats = (await client.get("/statistics", headers=headers)).json()
    for r in stats["rows"]:
        figure = r["cases_by_status"]["active"]
        listed = await client.get(figure["list"], headers=headers)
        assert listed.status_code == 200, figure["list"]
        assert len(listed.json()["items"]) == figure["value"], figure["list"]
    overdue = row(stats, world.units["o1"].id, "community_corrections")["overdue_tasks"]
    assert (await client.get(overdue["list"], headers=headers)).status_code == 200


async def test_health_workers_and_police_count_only_what_they_may_read(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    health = (await client.get("/statistics", headers=await login_as("health_d1"))).json()
    assert {r["program"] for r in health["rows"]} == {"severe_mental_illness"}
    police = (await client.get("/statistics", headers=await login_as("police_d1"))).json()
    active = {
        (r["org_unit_id"], r["program"]): r["cases_by_status"]["active"]["value"] for r in police["rows"]
    }
    assert active[(world.units["d1"].id, "community_corrections")] == 1  # the one shared case
    assert active[(world.units["d1"].id, "drug_rehab")] == 0
    refused = await client.get(
        "/statistics", params={"program": "drug_rehab"}, headers=await login_as("health_d1")
    )
    assert refused.status_code == 403


async def test_statistics_of_another_district_are_refused(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    for caller in ("sup_d1", "off1", "health_d1", "police_d1"):
        response = await client.get(
            "/statistics", params={"org_unit_id": world.units["d2"].id}, headers=await login_as(caller)
        )
        assert response.status_code == 403, caller
    assert (await client.get("/statistics", headers=await login_as("admin"))).status_code == 403


async def test_compliance_and_on_time_intake_rates_are_computed_from_the_records(
    client: httpx.AsyncClient,
    world: World,
    login_as: Any,
    owner: asyncpg.Connection,
    clock: ManualClock,
) -> None:
    case_id = world.cases["cc_o1"]
    for outcome in ("complied", "attended", "absent_without_reason"):
        await client.post(
            f"/cases/{case_id}/contacts",
            headers=await login_as("off1"),
            json={
                "kind": "home_visit",
                "outcome": outcome,
                "occurred_at": (clock.now() - timedelta(days=1)).isoformat(),
            },
        )
    await owner.execute(
        "INSERT INTO tasks (case_id, kind, due_at, status, completed_at) VALUES "
        "($1, 'intake_due', now() - interval '5 days', 'done', now() - interval '6 days')",
        case_id,
    )
    await owner.execute(
        "INSERT INTO tasks (case_id, kind, due_at, status, completed_at) VALUES "
        "($1, 'intake_due', now() - interval '5 days', 'done', now() - interval '1 day')",
        world.cases["smi_o1"],
    )
    stats = (await client.get("/statistics", headers=await login_as("off1"))).json()
    o1 = world.units["o1"].id
    compliance = row(stats, o1, "community_corrections")["contact_compliance_rate"]
    assert compliance["value"] == round(2 / 3, 4)
    assert row(stats, o1, "community_corrections")["intake_on_time_rate"]["value"] == 1.0
    assert row(stats, o1, "severe_mental_illness")["intake_on_time_rate"]["value"] == 0.0
    assert row(stats, o1, "drug_rehab")["intake_on_time_rate"]["value"] is None  # nothing to rate


async def test_open_alerts_count_missed_intakes_of_referrals_that_have_no_case_yet(
    client: httpx.AsyncClient, world: World, login_as: Any, owner: asyncpg.Connection
) -> None:
    await owner.execute(
        "INSERT INTO alerts (kind, severity, org_unit_id, handover_id, raised_at, details, dedupe_key) "
        "VALUES ('missed_intake', 'serious', $1, $2, now(), '{\"program\": \"community_corrections\"}', $3)",
        world.units["o1"].id,
        world.handovers["o1"],
        f"test:{world.handovers['o1']}",
    )
    stats = (await client.get("/statistics", headers=await login_as("sup_d1"))).json()
    figure = row(stats, world.units["o1"].id, "community_corrections")["open_alerts"]
    assert figure["value"] == 2  # this one, and the world's strap-tamper alert on cc_o1
    listed = (await client.get(figure["list"], headers=await login_as("sup_d1"))).json()["items"]
    assert sorted((a["kind"], a["handover_id"]) for a in listed) == [
        ("missed_intake", world.handovers["o1"]),
        ("strap_tamper", None),
    ]
    health = (await client.get("/statistics", headers=await login_as("health_d1"))).json()
    assert all(r["open_alerts"]["value"] == 0 for r in health["rows"])
