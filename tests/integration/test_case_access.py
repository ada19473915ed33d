"""The object-level layer for cases: who reads and who writes which case."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import World, id_number_for

PURPOSE = "supervision review"


@pytest.mark.parametrize(
    ("caller", "case", "status"),
    [
        ("off1", "cc_o1", 200),  # own caseload
        ("off1", "smi_o1", 200),  # a colleague's case in the same office: readable
        ("off1c", "cc_o1", 200),  # an officer in a community reads their office's cases
        ("off1", "drug_o2", 403),  # another office of the same district
        ("off1", "cc_o3", 403),  # another district
        ("sup_d1", "drug_o2", 200),  # a supervisor reads their subtree
        ("sup_d1", "cc_o3", 403),
        ("sup_city", "cc_o3", 200),
        ("health_d1", "smi_o1", 200),
        ("health_d1", "cc_o1", 403),  # health workers: severe mental illness only
        ("police_d1", "cc_o1", 200),  # shared with police
        ("police_d1", "drug_o2", 403),
        ("admin", "cc_o1", 403),  # admins and auditors read no case data
        ("auditor", "cc_o1", 403),
    ],
)
async def test_who_may_read_which_case(
    client: httpx.AsyncClient, world: World, login_as: Any, caller: str, case: str, status: int
) -> None:
    response = await client.get(
        f"/cases/{world.cases[case]}", headers=await login_as(caller, purpose=PURPOSE)
    )
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("caller", "case", "status"),
    [
        ("off1", "cc_o1", 200),  # own caseload
        ("off1", "smi_o1", 403),  # a colleague's: read-only
        ("sup_d1", "smi_o1", 200),
        ("sup_d2", "smi_o1", 403),
    ],
)
async def test_officers_write_only_their_own_caseload(
    client: httpx.AsyncClient, world: World, login_as: Any, caller: str, case: str, status: int
) -> None:
    response = await client.patch(
        f"/cases/{world.cases[case]}", json={"shared_with_police": True}, headers=await login_as(caller)
    )
    assert response.status_code == status, response.text


async def test_the_caseload_list_holds_exactly_what_the_caller_may_read(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    async def listed(name: str, **params: Any) -> set[int]:
        response = await client.get("/cases", params=params, headers=await login_as(name))
        assert response.status_code == 200
        return {item["id"] for item in response.json()["items"]}

    c = world.cases
    assert await listed("off1") == {c["cc_o1"], c["smi_o1"]}
    assert await listed("off1", mine="true") == {c["cc_o1"]}
    assert await listed("sup_d1") == {c["cc_o1"], c["smi_o1"], c["drug_o2"]}
    assert await listed("sup_city") == set(c.values())
    assert await listed("health_d1") == {c["smi_o1"]}
    assert await listed("police_d1") == {c["cc_o1"]}


async def test_the_caseload_list_pages_with_a_cursor(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    headers = await login_as("sup_city")
    seen: list[int] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if after is not None:
            params["after"] = after
        page = (await client.get("/cases", params=params, headers=headers)).json()
        seen += [item["id"] for item in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == sorted(world.cases.values())


async def test_a_supervisor_reassigns_a_case_only_to_an_officer_inside_their_scope(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    case = world.cases["cc_o1"]
    moved = await client.patch(
        f"/cases/{case}", headers=await login_as("sup_d1"), json={"officer_id": world.accounts["off2"].id}
    )
    assert moved.status_code == 200 and moved.json()["officer_id"] == world.accounts["off2"].id
    outside = await client.patch(
        f"/cases/{case}", headers=await login_as("sup_d1"), json={"officer_id": world.accounts["off3"].id}
    )
    assert outside.status_code == 422 and outside.json()["errors"][0]["field"] == "officer_id"
    by_officer = await client.patch(
        f"/cases/{case}", headers=await login_as("off2"), json={"officer_id": world.accounts["off1"].id}
    )
    assert by_officer.status_code == 403


async def test_an_officer_opens_cases_on_their_own_caseload_inside_their_office(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    person = {
        "full_name": "New Person",
        "sex": "male",
        "birth_date": "1991-02-03",
        "id_number": id_number_for("1991-02-03", male=True),
    }
    created = await client.post(
        "/cases",
        headers=await login_as("off1"),
        json={"person": person, "program": "released_prisoner", "org_unit_id": world.units["c1"].id},
    )
    assert created.status_code == 201, created.text
    assert created.json()["officer_id"] == world.accounts["off1"].id
    duplicate = await client.post(
        "/cases",
        headers=await login_as("off1"),
        json={"person": person, "program": "drug_rehab", "org_unit_id": world.units["c1"].id},
    )
    assert duplicate.status_code == 409
    for_colleague = await client.post(
        "/cases",
        headers=await login_as("off1"),
        json={
            "person": {**person, "id_number": None, "confirm_possible_duplicate": True},
            "program": "drug_rehab",
            "org_unit_id": world.units["o1"].id,
            "officer_id": world.accounts["off1c"].id,
        },
    )
    assert for_colleague.status_code == 403
