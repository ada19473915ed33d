"""Bad input gets a clear 4xx problem naming the field or the reason, and writes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from casemgr.config import Settings
from tests.conftest import World

PROBLEM = "application/problem+json"


@pytest.fixture
async def officer(login_as: Any) -> dict[str, str]:
    headers: dict[str, str] = await login_as("off1")
    return headers


def valid_case(world: World) -> dict[str, Any]:
    return {
        "person": {"full_name": "Valid Name", "sex": "female", "birth_date": "1988-08-08"},
        "program": "drug_rehab",
        "org_unit_id": world.units["o1"].id,
    }


async def count_persons(owner: asyncpg.Connection) -> int:
    count: int = await owner.fetchval("SELECT count(*) FROM persons")
    return count


async def test_malformed_json_is_a_400_and_writes_nothing(
    client: httpx.AsyncClient, officer: dict[str, str], owner: asyncpg.Connection
) -> None:
    before = await count_persons(owner)
    response = await client.post(
        "/cases", content=b'{"person": {', headers={**officer, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "could not be read" in response.json()["detail"]
    assert await count_persons(owner) == before


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["person"].update(birth_date="1988-13-40"), "person.birth_date"),
        (lambda b: b["person"].update(sex="x"), "person.sex"),
        (lambda b: b.update(org_unit_id="seven"), "org_unit_id"),
        (lambda b: b.update(program="astrology"), "program"),
        (lambda b: b["person"].pop("full_name"), "person.full_name"),
        (lambda b: b["person"].update(id_number="123"), "person.id_number"),
        (lambda b: b.update(unexpected=1), "unexpected"),
        (lambda b: b["person"].update(nickname="x"), "person.nickname"),
    ],
)
async def test_a_field_that_breaks_the_schema_is_a_422_naming_it_and_writes_nothing(
    client: httpx.AsyncClient,
    officer: dict[str, str],
    owner: asyncpg.Connection,
    world: World,
    mutate: Any,
    field: str,
) -> None:
    body = valid_case(world)
    mutate(body)
    before = await count_persons(owner)
    response = await client.post("/cases", json=body, headers=officer)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["field"] == field
    assert field.split(".")[-1] in problem["detail"] or field in problem["detail"]
    assert await count_persons(owner) == before


async def test_a_body_over_the_size_limit_is_a_413(
    client: httpx.AsyncClient, officer: dict[str, str], settings: Settings
) -> None:
    response = await client.post(
        "/cases",
        content=b"{" + b" " * settings.max_body_bytes + b"}",
        headers={**officer, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("header", ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-token"])
async def test_a_missing_or_invalid_token_is_a_401_saying_why(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/cases", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    detail = response.json()["detail"]
    assert "Authorization" in detail or "log in again" in detail


async def test_bad_query_parameters_are_a_4xx_naming_them(
    client: httpx.AsyncClient, officer: dict[str, str]
) -> None:
    response = await client.get("/cases", params={"limit": "9999"}, headers=officer)
    assert response.status_code in (400, 422)
    assert "limit" in response.text
    response = await client.get("/cases", params={"program": "astrology"}, headers=officer)
    assert response.status_code in (400, 422)
    assert "program" in response.text


async def test_unknown_routes_and_methods_are_problems_too(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    wrong_method = await client.put("/health/live")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith(PROBLEM)


async def test_a_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/health/live", headers={"X-Request-ID": "trace-12345678"})
    assert given.headers["x-request-id"] == "trace-12345678"
    hostile = await client.get("/health/live", headers={"X-Request-ID": "<script>"})
    assert hostile.headers["x-request-id"] != "<script>"
    assert len(hostile.headers["x-request-id"]) == 32


async def test_ids_beyond_bigint_and_control_characters_are_4xx_never_a_database_error(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    headers = await login_as("sup_city", purpose="bounds")
    huge = "99999999999999999999"
    assert (await client.get(f"/cases/{huge}", headers=headers)).status_code in (400, 404, 422)
    assert (await client.get("/cases", params={"after": huge}, headers=headers)).status_code == 422
    too_big = await client.patch(
        f"/cases/{world.cases['cc_o1']}", json={"officer_id": int(huge)}, headers=headers
    )
    assert too_big.status_code == 422 and too_big.json()["errors"][0]["field"] == "officer_id"
    body = valid_case(world)
    body["person"]["full_name"] = "nul\x00inside"
    nul = await client.post("/cases", json=body, headers=headers)
    assert nul.status_code == 422 and nul.json()["errors"][0]["field"] == "person.full_name"
    login = await client.post("/auth/login", json={"username": "a\x00b", "password": "x"})
    assert login.status_code == 422 and login.json()["errors"][0]["field"] == "username"


async def test_a_nul_character_postgresql_cannot_store_is_a_400_not_a_500_and_writes_nothing(
    client: httpx.AsyncClient, officer: dict[str, str], owner: asyncpg.Connection, world: World
) -> None:
    """Found by the schema fuzzer: a NUL in a query parameter or a JSON text reached PostgreSQL."""
    search = await client.get("/people", params={"q": "Li\x00"}, headers=officer)
    assert search.status_code == 400, search.text
    assert search.json()["type"] == "urn:casemgr:problem:unstorable_value"
    before = await count_persons(owner)
    body = valid_case(world)
    body["person"]["full_name"] = "Nul\x00Name"
    created = await client.post("/cases", json=body, headers=officer)
    assert created.status_code in (400, 422), created.text
    assert "Nul" not in created.text  # PostgreSQL's message quotes the value: it is not passed on
    assert await count_persons(owner) == before
