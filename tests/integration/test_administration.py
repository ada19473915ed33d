"""Admins manage org units and accounts inside their subtree, and nothing else."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from tests.conftest import PASSWORD, World


async def test_an_admin_builds_the_org_tree_with_ltree_paths_and_kinds_that_nest(
    client: httpx.AsyncClient, world: World, login_as: Any, owner: asyncpg.Connection
) -> None:
    headers = await login_as("admin")
    code = f"grid-{uuid.uuid4().hex[:6]}"
    created = await client.post(
        "/org-units",
        headers=headers,
        json={"parent_id": world.units["c1"].id, "kind": "grid", "name": "Grid 7", "code": code},
    )
    assert created.status_code == 201, created.text
    unit = created.json()
    assert unit["path"] == f"{world.units['c1'].path}.n{unit['id']}"
    assert await owner.fetchval("SELECT $1::ltree <@ $2::ltree", unit["path"], world.units["d1"].path)
    wrong_kind = await client.post(
        "/org-units",
        headers=headers,
        json={"parent_id": world.units["c1"].id, "kind": "district", "name": "x", "code": code + "x"},
    )
    assert wrong_kind.status_code == 422 and wrong_kind.json()["errors"][0]["field"] == "kind"
    taken = await client.post(
        "/org-units",
        headers=headers,
        json={"parent_id": world.units["c1"].id, "kind": "grid", "name": "again", "code": code},
    )
    assert taken.status_code == 409


async def test_moving_a_unit_moves_its_subtree_and_ends_the_sessions_of_accounts_in_it(
    client: httpx.AsyncClient, world: World, login_as: Any, owner: asyncpg.Connection
) -> None:
    officer_session = await login_as("off1")
    moved = await client.patch(
        f"/org-units/{world.units['o1'].id}",
        headers=await login_as("admin"),
        json={"parent_id": world.units["d2"].id},
    )
    assert moved.status_code == 200, moved.text
    new_path = moved.json()["path"]
    assert new_path.startswith(world.units["d2"].path + ".")
    c1_path = await owner.fetchval("SELECT path::text FROM org_units WHERE id = $1", world.units["c1"].id)
    assert c1_path == f"{new_path}.n{world.units['c1'].id}"
    assert (await client.get("/auth/me", headers=officer_session)).status_code == 401
    under_itself = await client.patch(
        f"/org-units/{world.units['d2'].id}",
        headers=await login_as("admin"),
        json={"parent_id": world.units["c1"].id},
    )
    assert under_itself.status_code == 422


async def test_a_unit_with_children_or_people_cannot_be_deleted(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    headers = await login_as("admin")
    assert (await client.delete(f"/org-units/{world.units['o1'].id}", headers=headers)).status_code == 409
    assert (
        await client.delete(f"/org-units/{world.units['o2'].id}", headers=headers)
    ).status_code == 409  # accounts and cases


async def test_an_admin_creates_and_disables_accounts_and_disabling_ends_their_sessions(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    headers = await login_as("admin_d1")
    username = f"new.officer.{uuid.uuid4().hex[:6]}"
    created = await client.post(
        "/accounts",
        headers=headers,
        json={
            "username": username,
            "display_name": "New Officer",
            "role": "officer",
            "org_unit_id": world.units["o2"].id,
            "password": PASSWORD,
        },
    )
    assert created.status_code == 201, created.text
    assert "password" not in created.text
    weak = await client.post(
        "/accounts",
        headers=headers,
        json={
            "username": username + "x",
            "display_name": "x",
            "role": "officer",
            "org_unit_id": world.units["o2"].id,
            "password": "short",
        },
    )
    assert weak.status_code == 422 and weak.json()["errors"][0]["field"] == "password"
    session = await login_as("off2")
    disabled = await client.patch(
        f"/accounts/{world.accounts['off2'].id}", headers=headers, json={"disabled": True}
    )
    assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
    assert (await client.get("/auth/me", headers=session)).status_code == 401
    login = await client.post(
        "/auth/login", json={"username": world.accounts["off2"].username, "password": PASSWORD}
    )
    assert login.status_code == 401


async def test_an_admin_cannot_change_their_own_role_or_standing(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    response = await client.patch(
        f"/accounts/{world.accounts['admin_d1'].id}",
        headers=await login_as("admin_d1"),
        json={"role": "supervisor"},
    )
    assert response.status_code == 403


async def test_the_account_list_holds_only_the_admins_subtree(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    response = await client.get("/accounts", headers=await login_as("admin_d1"), params={"limit": 500})
    assert response.status_code == 200
    ids = {a["id"] for a in response.json()["items"]}
    in_d1 = {a.id for a in world.accounts.values() if a.unit.path.startswith(world.units["d1"].path)}
    assert in_d1 <= ids
    assert world.accounts["off3"].id not in ids and world.accounts["admin"].id not in ids


async def test_an_auditor_reads_the_trail_of_their_scope_and_the_reading_is_recorded(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    read = await client.get(
        f"/cases/{world.cases['cc_o1']}", headers=await login_as("off1", purpose="audit visibility test")
    )
    request_id = read.headers["x-request-id"]
    trail = await client.get(
        "/audit",
        headers=await login_as("auditor_d1"),
        params={"object_type": "case", "object_id": world.cases["cc_o1"]},
    )
    assert trail.status_code == 200
    events = trail.json()["items"]
    assert any(e["request_id"] == request_id and e["purpose"] == "audit visibility test" for e in events)
    d2_read = await client.get(
        f"/cases/{world.cases['cc_o3']}", headers=await login_as("off3", purpose="other district")
    )
    other = await client.get(
        "/audit", headers=await login_as("auditor_d1"), params={"object_id": world.cases["cc_o3"]}
    )
    assert d2_read.status_code == 200
    assert other.json()["items"] == []
    own = await client.get(
        "/audit",
        headers=await login_as("auditor"),
        params={"action": "audit.read", "actor_id": world.accounts["auditor_d1"].id},
    )
    assert len(own.json()["items"]) >= 2
