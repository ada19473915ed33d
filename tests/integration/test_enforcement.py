"""Violations on the case file and enforcement: a warning at once, a revocation only after the
office head and then the district head have signed, three different people, every step a case
event and an audit row."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from casemgr.auth.principal import MfaState, Role
from casemgr.resources import Resources
from tests.conftest import World


async def office_head(owner: asyncpg.Connection, world: World, resources: Resources) -> dict[str, str]:
    """A supervisor of office o1 (the world has supervisors only at district and city level)."""
    account_id = await owner.fetchval(
        "INSERT INTO accounts (username, display_name, role, org_unit_id, password_hash) "
        "VALUES ($1, 'office head', 'supervisor', $2, 'x') RETURNING id",
        f"head.o1.{world.units['o1'].id}",
        world.units["o1"].id,
    )
    session = await resources.sessions.issue(
        account_id=account_id,
        role=Role.SUPERVISOR,
        org_unit_id=world.units["o1"].id,
        scope=world.units["o1"].path,
        mfa=MfaState.PASSED,
    )
    return {"Authorization": f"Bearer {session.token}"}


async def events(owner: asyncpg.Connection, case_id: int) -> list[str]:
    return [
        r[0]
        for r in await owner.fetch("SELECT kind FROM case_events WHERE case_id = $1 ORDER BY id", case_id)
    ]


async def test_a_confirmed_alert_becomes_a_violation_on_the_case_file_and_grounds_a_warning(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any
) -> None:
    officer = await login_as("off1")
    alert_id = world.alerts["cc_o1"]
    resolved = await client.post(
        f"/alerts/{alert_id}/resolve",
        json={"outcome": "confirmed_violation", "note": "strap cut with scissors, admitted"},
        headers=officer,
    )
    assert resolved.status_code == 200
    case_id = world.cases["cc_o1"]
    note = await owner.fetchval(
        "SELECT note FROM case_events WHERE case_id = $1 AND kind = 'violation' ORDER BY id DESC LIMIT 1",
        case_id,
    )
    assert note == f"alert {alert_id} (strap_tamper): strap cut with scissors, admitted"
    warning = await client.post(
        f"/cases/{case_id}/enforcement",
        json={"kind": "warning", "note": "formal warning given in person", "alert_id": alert_id},
        headers=officer,
    )
    assert warning.status_code == 201, warning.text
    assert (warning.json()["status"], warning.json()["alert_id"]) == ("issued", alert_id)
    assert (await events(owner, case_id))[-1] == "warning_issued"
    unconfirmed = await client.post(
        f"/cases/{case_id}/enforcement",
        json={"kind": "warning", "note": "on an alert not confirmed", "alert_id": world.alerts["cc_o3"]},
        headers=officer,
    )
    assert unconfirmed.status_code == 422 and unconfirmed.json()["errors"][0]["field"] == "alert_id"


async def test_a_revocation_needs_the_office_head_then_the_district_head_three_different_people(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any, resources: Resources
) -> None:
    case_id = world.cases["cc_o1"]
    proposed = await client.post(
        f"/cases/{case_id}/enforcement",
        json={"kind": "revocation_proposal", "note": "third curfew breach this month"},
        headers=await login_as("off1"),
    )
    assert proposed.status_code == 201 and proposed.json()["status"] == "proposed"
    action = proposed.json()["id"]
    district = await login_as("sup_d1")
    too_early = await client.post(f"/enforcement/{action}/sign", headers=district)
    assert too_early.status_code == 409  # the office head signs first
    by_city = await client.post(f"/enforcement/{action}/sign", headers=await login_as("sup_city"))
    assert (by_city.status_code, by_city.json()["detail"]) == (
        403,
        "a revocation is signed by the office head, then the district head",
    )
    head = await office_head(owner, world, resources)
    signed = await client.post(f"/enforcement/{action}/sign", headers=head)
    assert signed.status_code == 200 and signed.json()["status"] == "office_signed"
    approved = await client.post(f"/enforcement/{action}/sign", headers=district)
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved"
    assert body["district_signed_by"] == world.accounts["sup_d1"].id
    assert (await events(owner, case_id))[-3:] == [
        "revocation_proposed",
        "revocation_signed_office",
        "revocation_signed_district",
    ]
    audited = await owner.fetch(
        "SELECT action FROM audit_log WHERE object_type = 'enforcement' AND object_id = $1 "
        "AND outcome = 'success' ORDER BY id",
        str(action),
    )
    assert [r["action"] for r in audited] == [
        "enforcement.revocation_proposal",
        "enforcement.sign_office",
        "enforcement.sign_district",
    ]


async def test_whoever_proposes_a_revocation_cannot_sign_it_and_a_rejection_ends_it(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any, resources: Resources
) -> None:
    head = await office_head(owner, world, resources)
    proposed = await client.post(
        f"/cases/{world.cases['cc_o1']}/enforcement",
        json={"kind": "revocation_proposal", "note": "absconded for three days"},
        headers=head,
    )
    action = proposed.json()["id"]
    own = await client.post(f"/enforcement/{action}/sign", headers=head)
    assert (own.status_code, own.json()["rule"]) == (422, "four_eyes")
    rejected = await client.post(
        f"/enforcement/{action}/reject",
        json={"note": "a warning is enough"},
        headers=await login_as("sup_d1"),
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    again = await client.post(f"/enforcement/{action}/sign", headers=await login_as("sup_d1"))
    assert again.status_code == 409


async def test_only_community_corrections_can_be_revoked(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    response = await client.post(
        f"/cases/{world.cases['smi_o1']}/enforcement",
        json={"kind": "revocation_proposal", "note": "not a sentence"},
        headers=await login_as("off1c"),
    )
    assert (response.status_code, response.json()["rule"]) == (422, "community_corrections_only")
