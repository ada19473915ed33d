"""The person registry: identity checks, duplicates, addresses with history, search."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import World, audit_rows, id_number_for


def new_person(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "full_name": "单田芳" + uuid.uuid4().hex[:4],
        "sex": "male",
        "birth_date": "1934-12-12",
        "aliases": ["老单"],
        "phones": [{"number": "+86 138 0000 0000", "label": "mobile"}],
        "contacts": [{"kind": "emergency", "name": "王芳", "relation": "daughter", "phone": "13900000000"}],
        "addresses": [{"kind": "residence", "address": "Willow Lane 5", "valid_from": "2020-01-01"}],
        "org_unit_id": world.units["c1"].id,
    }
    body.update(overrides)
    return body


async def test_registering_a_person_romanises_the_name_and_keeps_everything_given(
    client: httpx.AsyncClient, world: World, login_as: Any, owner: asyncpg.Connection
) -> None:
    body = new_person(world, full_name="单田芳", id_number=id_number_for("1934-12-12", True))
    response = await client.post("/people", json=body, headers=await login_as("off1"))
    assert response.status_code == 201, response.text
    person = response.json()
    assert (person["name_pinyin"], person["name_initials"]) == ("shantianfang", "stf")
    assert person["aliases"] == ["老单"] and person["phones"][0]["label"] == "mobile"
    assert person["contacts"][0]["kind"] == "emergency"
    assert [a["address"] for a in person["addresses"]] == ["Willow Lane 5"]
    [row] = await audit_rows(owner, response.headers["x-request-id"])
    assert (row["action"], row["object_id"]) == ("person.create", str(person["id"]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id_number": "110105193412120011"}, "check character"),
        ({"id_number": id_number_for("1950-01-01", True)}, "birth date"),
        ({"id_number": id_number_for("1934-12-12", False)}, "sex"),
    ],
)
async def test_an_id_number_that_does_not_check_out_is_a_422_naming_it(
    client: httpx.AsyncClient, world: World, login_as: Any, change: dict[str, str], message: str
) -> None:
    response = await client.post("/people", json=new_person(world, **change), headers=await login_as("off1"))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "id_number"
    assert message in response.json()["detail"]


async def test_a_known_id_number_is_a_409_pointing_at_the_existing_person_even_in_another_district(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    id_number = id_number_for("1934-12-12", True)
    first = await client.post(
        "/people", json=new_person(world, id_number=id_number), headers=await login_as("off1")
    )
    assert first.status_code == 201
    again = await client.post(
        "/people",
        json=new_person(world, id_number=id_number, org_unit_id=world.units["o3"].id),
        headers=await login_as("off3"),
    )
    assert again.status_code == 409
    assert again.json()["type"].endswith("duplicate_person")
    assert again.json()["existing_person_id"] == first.json()["id"]


async def test_the_same_name_and_birth_date_needs_the_officers_confirmation(
    client: httpx.AsyncClient, world: World, login_as: Any, owner: asyncpg.Connection
) -> None:
    body = new_person(world)
    first = await client.post("/people", json=body, headers=await login_as("off1"))
    assert first.status_code == 201
    warned = await client.post("/people", json=body, headers=await login_as("off1"))
    assert warned.status_code == 409
    assert warned.json()["type"].endswith("possible_duplicate")
    assert warned.json()["candidate_person_ids"] == [first.json()["id"]]
    confirmed = await client.post(
        "/people", json={**body, "confirm_possible_duplicate": True}, headers=await login_as("off1")
    )
    assert confirmed.status_code == 201
    [row] = await audit_rows(owner, confirmed.headers["x-request-id"])
    assert row["reason"] == "possible_duplicate_confirmed"


async def test_a_new_address_keeps_the_old_one_as_history(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    headers = await login_as("off1")
    person = (await client.post("/people", json=new_person(world), headers=headers)).json()
    moved = await client.post(
        f"/people/{person['id']}/addresses",
        headers=headers,
        json={"kind": "residence", "address": "Ferry Road 9", "valid_from": "2024-06-01"},
    )
    assert moved.status_code == 201, moved.text
    addresses = moved.json()["addresses"]
    assert [(a["address"], a["valid_to"]) for a in addresses] == [
        ("Ferry Road 9", None),
        ("Willow Lane 5", "2024-05-31"),
    ]
    backdated = await client.post(
        f"/people/{person['id']}/addresses",
        headers=headers,
        json={"kind": "residence", "address": "Old Place", "valid_from": "2023-01-01"},
    )
    assert backdated.status_code == 422 and backdated.json()["errors"][0]["field"] == "valid_from"


async def test_renaming_a_person_renews_the_pinyin(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    headers = await login_as("off1")
    person = (await client.post("/people", json=new_person(world), headers=headers)).json()
    renamed = await client.patch(f"/people/{person['id']}", headers=headers, json={"full_name": "曾国藩"})
    assert renamed.status_code == 200
    assert (renamed.json()["name_pinyin"], renamed.json()["name_initials"]) == ("zengguofan", "zgf")


async def test_search_finds_by_name_pinyin_initials_alias_and_id_number_inside_the_scope_only(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    tag = uuid.uuid4().hex[:4]
    name = f"欧阳娜娜{tag}"
    id_number = id_number_for("1990-05-05", False)
    created = await client.post(
        "/people",
        headers=await login_as("off1"),
        json=new_person(
            world,
            full_name=name,
            sex="female",
            birth_date="1990-05-05",
            id_number=id_number,
            aliases=[f"娜娜{tag}"],
        ),
    )
    assert created.status_code == 201, created.text
    person_id = created.json()["id"]

    async def found(caller: str, q: str) -> bool:
        response = await client.get("/people", params={"q": q, "limit": 200}, headers=await login_as(caller))
        assert response.status_code == 200, response.text
        return person_id in {p["id"] for p in response.json()["items"]}

    for q in (name, "欧阳娜娜", f"ouyangnana{tag}", "ou yang na na", "oynn", id_number, f"娜娜{tag}"):
        assert await found("off1", q), q
    assert await found("sup_d1", "oynn")
    # Another office of the district, another district, and roles without a case to read.
    for caller in ("off2", "off3", "sup_d2", "health_d1", "police_d1"):
        assert not await found(caller, id_number), caller


async def test_reading_a_person_needs_a_purpose_and_shows_only_readable_cases(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    person_id = world.persons["smi_o1"]
    assert (await client.get(f"/people/{person_id}", headers=await login_as("health_d1"))).status_code == 428
    as_health = await client.get(
        f"/people/{person_id}", headers=await login_as("health_d1", purpose="follow-up")
    )
    assert as_health.status_code == 200
    assert [c["id"] for c in as_health.json()["cases"]] == [world.cases["smi_o1"]]
    as_police = await client.get(f"/people/{person_id}", headers=await login_as("police_d1", purpose="check"))
    assert as_police.status_code == 403
