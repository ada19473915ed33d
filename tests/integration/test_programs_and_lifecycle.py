"""Program details with sealed sensitive fields, and the case lifecycle with its events."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import asyncpg
import httpx
import structlog

from casemgr.config import DataKey
from casemgr.crypto import Keyring
from casemgr.resources import Resources
from tests.conftest import World, audit_rows

PURPOSE = "follow-up visit"
CLINICAL = {
    "diagnosis_icd10": "F20.0",
    "treatment_status": "in_treatment",
    "medication_status": "irregular",
    "hospital": "City Mental Health Centre",
}


def person(**overrides: Any) -> dict[str, Any]:
    return {
        "full_name": f"Case Person {uuid.uuid4().hex[:6]}",
        "sex": "female",
        "birth_date": "1985-03-03",
        **overrides,
    }


async def open_case(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    world: World,
    program: str,
    detail: dict[str, Any] | None = None,
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {
        "person": person(),
        "program": program,
        "org_unit_id": world.units["o1"].id,
        **extra,
    }
    if detail is not None:
        body["detail"] = {"program": program, **detail}
    return await client.post("/cases", json=body, headers=headers)


async def test_clinical_fields_are_sealed_and_shown_only_to_health_workers(
    client: httpx.AsyncClient, world: World, login_as: Any, owner: asyncpg.Connection
) -> None:
    officer = await login_as("off1")
    refused = await open_case(client, officer, world, "severe_mental_illness", {"risk_grade": 3, **CLINICAL})
    assert refused.status_code == 403
    assert "diagnosis_icd10" in refused.json()["detail"]
    opened = await open_case(client, officer, world, "severe_mental_illness", {"risk_grade": 3})
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["id"]

    recorded = await client.put(
        f"/cases/{case_id}/detail",
        headers=await login_as("health_d1"),
        json={"program": "severe_mental_illness", "risk_grade": 4, **CLINICAL},
    )
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["detail"]["diagnosis_icd10"] == "F20.0"

    stored = await owner.fetchrow("SELECT details::text, sealed_details FROM cases WHERE id = $1", case_id)
    assert "F20" not in stored["details"] and b"F20" not in stored["sealed_details"]
    assert b"Mental Health Centre" not in stored["sealed_details"]

    as_officer = (
        await client.get(f"/cases/{case_id}", headers=await login_as("off1", purpose=PURPOSE))
    ).json()
    assert as_officer["detail"] == {"program": "severe_mental_illness", "risk_grade": 4, "guardian": None}
    as_supervisor = (
        await client.get(f"/cases/{case_id}", headers=await login_as("sup_d1", purpose=PURPOSE))
    ).json()
    assert "diagnosis_icd10" not in as_supervisor["detail"]
    read = await client.get(f"/cases/{case_id}", headers=await login_as("health_d1", purpose=PURPOSE))
    assert {k: read.json()["detail"][k] for k in CLINICAL} == CLINICAL
    [row] = await audit_rows(owner, read.headers["x-request-id"])
    assert row["reason"] == "with_sensitive_fields" and "F20" not in repr(dict(row))


async def test_an_uncleared_write_keeps_the_sealed_fields_it_could_not_see(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    opened = await open_case(
        client, await login_as("off1"), world, "severe_mental_illness", {"risk_grade": 1}
    )
    case_id = opened.json()["id"]
    await client.put(
        f"/cases/{case_id}/detail",
        headers=await login_as("health_d1"),
        json={"program": "severe_mental_illness", "risk_grade": 1, **CLINICAL},
    )
    regraded = await client.put(
        f"/cases/{case_id}/detail",
        headers=await login_as("off1"),
        json={"program": "severe_mental_illness", "risk_grade": 5},
    )
    assert regraded.status_code == 200
    seen = (
        await client.get(f"/cases/{case_id}", headers=await login_as("health_d1", purpose=PURPOSE))
    ).json()
    assert seen["detail"]["risk_grade"] == 5 and seen["detail"]["diagnosis_icd10"] == "F20.0"


async def test_drug_results_are_sealed_and_shown_to_officers_and_supervisors_only(
    client: httpx.AsyncClient, world: World, login_as: Any, owner: asyncpg.Connection
) -> None:
    detail = {
        "kind": "community_rehabilitation",
        "agreement_start": "2026-01-01",
        "drug_test_interval_days": 30,
        "drug_tests": [{"date": "2026-02-01", "result": "positive", "substance": "methamphetamine"}],
        "relapses": [{"date": "2026-02-01", "substance": "methamphetamine"}],
    }
    opened = await open_case(client, await login_as("off1"), world, "drug_rehab", detail)
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["id"]
    assert opened.json()["detail"]["drug_tests"][0]["result"] == "positive"
    sealed = await owner.fetchval("SELECT sealed_details FROM cases WHERE id = $1", case_id)
    assert b"methamphetamine" not in sealed
    await client.patch(f"/cases/{case_id}", json={"shared_with_police": True}, headers=await login_as("off1"))
    as_police = (
        await client.get(f"/cases/{case_id}", headers=await login_as("police_d1", purpose=PURPOSE))
    ).json()
    assert "drug_tests" not in as_police["detail"] and "relapses" not in as_police["detail"]
    as_supervisor = (
        await client.get(f"/cases/{case_id}", headers=await login_as("sup_d1", purpose=PURPOSE))
    ).json()
    assert as_supervisor["detail"]["relapses"][0]["substance"] == "methamphetamine"


async def test_sealed_fields_still_open_after_the_key_is_rotated(
    client: httpx.AsyncClient, world: World, login_as: Any, resources: Resources
) -> None:
    opened = await open_case(
        client,
        await login_as("off1"),
        world,
        "drug_rehab",
        {
            "kind": "community_recovery",
            "agreement_start": "2026-01-01",
            "drug_tests": [{"date": "2026-03-01", "result": "negative"}],
        },
    )
    case_id = opened.json()["id"]
    old_keys = resources.settings.data_keys
    resources.keyring = Keyring(
        (DataKey(key_id="t2", key=base64.b64decode(base64.b64encode(b"n" * 32))), *old_keys)
    )
    seen = await client.get(f"/cases/{case_id}", headers=await login_as("off1", purpose=PURPOSE))
    assert seen.json()["detail"]["drug_tests"] == [
        {"date": "2026-03-01", "result": "negative", "substance": None}
    ]


async def test_a_detail_of_another_program_is_a_422_naming_it(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    opened = await open_case(
        client,
        await login_as("off1"),
        world,
        "released_prisoner",
        {"prison": "North Prison", "release_date": "2026-06-01", "must_meet": True},
    )
    wrong = await client.put(
        f"/cases/{opened.json()['id']}/detail",
        headers=await login_as("off1"),
        json={"program": "drug_rehab", "kind": "community_recovery", "agreement_start": "2026-01-01"},
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "detail.program"
    malformed = await client.put(
        f"/cases/{opened.json()['id']}/detail",
        headers=await login_as("off1"),
        json={"program": "released_prisoner", "prison": "x"},
    )
    assert malformed.status_code == 422 and "release_date" in malformed.text


async def test_the_lifecycle_moves_are_recorded_with_who_and_why_and_bad_moves_are_409(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    officer = await login_as("off1")
    case_id = (await open_case(client, officer, world, "released_prisoner")).json()["id"]

    async def move(to: str, **extra: Any) -> httpx.Response:
        return await client.post(
            f"/cases/{case_id}/transitions",
            headers=officer,
            json={"to": to, "note": f"because {to}", **extra},
        )

    assert (await move("active")).json()["activated_at"] is not None
    assert (await move("suspended")).status_code == 200
    assert (await move("pending_intake")).status_code == 409
    assert (await move("active")).status_code == 200
    no_reason = await move("closed")
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "closure_reason"
    by_hand = await move("closed", closure_reason="transferred_out")
    assert by_hand.status_code == 422
    closed = await move("closed", closure_reason="term_expired")
    assert closed.status_code == 200
    assert (closed.json()["status"], closed.json()["closure_reason"]) == ("closed", "term_expired")
    reopened = await move("active")
    assert reopened.status_code == 409 and "closed case stays closed" in reopened.json()["detail"]
    events = (
        await client.get(f"/cases/{case_id}/events", headers=await login_as("off1", purpose=PURPOSE))
    ).json()
    moves = [(e["from_status"], e["to_status"], e["note"]) for e in events if e["kind"] == "status_changed"]
    assert moves == [
        ("pending_intake", "active", "because active"),
        ("active", "suspended", "because suspended"),
        ("suspended", "active", "because active"),
        ("active", "closed", "because closed"),
    ]
    assert {e["actor_id"] for e in events} == {world.accounts["off1"].id}


async def test_one_open_case_per_person_and_program(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    officer = await login_as("off1")
    first = await open_case(client, officer, world, "drug_rehab")
    person_id = first.json()["person"]["id"]
    body = {"person_id": person_id, "program": "drug_rehab", "org_unit_id": world.units["o1"].id}
    assert (await client.post("/cases", json=body, headers=officer)).status_code == 409
    other_program = await client.post(
        "/cases", headers=officer, json={**body, "program": "released_prisoner"}
    )
    assert other_program.status_code == 201
    await client.post(
        f"/cases/{first.json()['id']}/transitions",
        headers=officer,
        json={"to": "closed", "note": "agreement ended", "closure_reason": "term_expired"},
    )
    assert (await client.post("/cases", json=body, headers=officer)).status_code == 201


async def test_level_changes_are_events_and_filter_the_caseload(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    officer = await login_as("off1")
    case_id = (await open_case(client, officer, world, "community_corrections")).json()["id"]
    changed = await client.patch(
        f"/cases/{case_id}",
        headers=officer,
        json={"supervision_level": "strict", "note": "missed two reports"},
    )
    assert changed.json()["supervision_level"] == "strict"
    strict = (
        await client.get("/cases", params={"level": "strict", "status": "pending_intake"}, headers=officer)
    ).json()["items"]
    assert [c["id"] for c in strict] == [case_id]
    events = (
        await client.get(f"/cases/{case_id}/events", headers=await login_as("off1", purpose=PURPOSE))
    ).json()
    assert [(e["kind"], e["note"]) for e in events] == [
        ("opened", None),
        ("level_strict", "missed two reports"),
    ]


async def test_no_clinical_value_reaches_the_logs(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    opened = await open_case(
        client, await login_as("off1"), world, "severe_mental_illness", {"risk_grade": 2}
    )
    with structlog.testing.capture_logs() as logs:
        await client.put(
            f"/cases/{opened.json()['id']}/detail",
            headers=await login_as("health_d1"),
            json={"program": "severe_mental_illness", "risk_grade": 2, **CLINICAL},
        )
        await client.get(
            f"/cases/{opened.json()['id']}", headers=await login_as("health_d1", purpose=PURPOSE)
        )
    assert logs and "F20" not in repr(logs) and "Mental Health Centre" not in repr(logs)
