"""Service referrals, case notes and documents."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg
import httpx

from tests.conftest import World, audit_rows

PDF = b"%PDF-1.7\n" + b"court order " * 100 + b"\n%%EOF"
PURPOSE = "case review"


async def test_a_service_referral_moves_through_its_statuses_and_refuses_the_rest(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    headers = await login_as("off1")
    made = await client.post(
        f"/cases/{world.cases['cc_o1']}/service-referrals",
        headers=headers,
        json={"service": "housing", "provider": "City Housing Office"},
    )
    assert made.status_code == 201 and made.json()["status"] == "proposed"
    referral_id = made.json()["id"]
    for status in ("referred", "accepted", "completed"):
        moved = await client.patch(
            f"/service-referrals/{referral_id}", headers=headers, json={"status": status}
        )
        assert moved.status_code == 200 and moved.json()["status"] == status
    final = await client.patch(
        f"/service-referrals/{referral_id}", headers=headers, json={"status": "cancelled"}
    )
    assert final.status_code == 409
    listed = await client.get(
        f"/cases/{world.cases['cc_o1']}/service-referrals", headers=await login_as("sup_d1", purpose=PURPOSE)
    )
    assert {r["id"]: r["status"] for r in listed.json()}[referral_id] == "completed"


async def test_notes_are_appended_and_read_newest_first(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    case_id = world.cases["cc_o1"]
    for body in ("first visit went well", "correction: the visit was on Tuesday"):
        assert (
            await client.post(f"/cases/{case_id}/notes", json={"body": body}, headers=await login_as("off1"))
        ).status_code == 201
    notes = (
        await client.get(f"/cases/{case_id}/notes", headers=await login_as("off1", purpose=PURPOSE))
    ).json()
    assert [n["body"] for n in notes] == ["correction: the visit was on Tuesday", "first visit went well"]
    empty = await client.post(f"/cases/{case_id}/notes", json={"body": ""}, headers=await login_as("off1"))
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "body"


async def test_a_document_is_sealed_at_rest_and_comes_back_whole_to_a_reader_with_a_purpose(
    client: httpx.AsyncClient, world: World, login_as: Any, owner: asyncpg.Connection
) -> None:
    case_id = world.cases["cc_o1"]
    uploaded = await client.post(
        f"/cases/{case_id}/documents",
        params={"filename": "order.pdf"},
        content=PDF,
        headers={**await login_as("off1"), "Content-Type": "application/pdf"},
    )
    assert uploaded.status_code == 201, uploaded.text
    document = uploaded.json()
    assert document["sha256"] == hashlib.sha256(PDF).hexdigest() and document["size_bytes"] == len(PDF)
    sealed = await owner.fetchval("SELECT sealed FROM case_documents WHERE id = $1", document["id"])
    assert b"court order" not in sealed
    assert (
        await client.get(f"/documents/{document['id']}", headers=await login_as("sup_d1"))
    ).status_code == 428
    downloaded = await client.get(
        f"/documents/{document['id']}", headers=await login_as("sup_d1", purpose=PURPOSE)
    )
    assert downloaded.status_code == 200 and downloaded.content == PDF
    assert downloaded.headers["content-type"].startswith("application/pdf")
    [row] = await audit_rows(owner, downloaded.headers["x-request-id"])
    assert row["action"] == "case.document_download"
    assert (
        await client.get(f"/documents/{document['id']}", headers=await login_as("sup_d2", purpose=PURPOSE))
    ).status_code == 403


async def test_documents_of_another_type_or_too_large_or_disguised_are_refused(
    client: httpx.AsyncClient, world: World, login_as: Any, owner: asyncpg.Connection
) -> None:
    case_id = world.cases["cc_o1"]
    headers = await login_as("off1")
    before = await owner.fetchval("SELECT count(*) FROM case_documents WHERE case_id = $1", case_id)

    async def upload(content: bytes, content_type: str, filename: str = "x.pdf") -> httpx.Response:
        return await client.post(
            f"/cases/{case_id}/documents",
            params={"filename": filename},
            content=content,
            headers={**headers, "Content-Type": content_type},
        )

    assert (await upload(b"MZ\x90\x00 an executable", "application/x-msdownload")).status_code == 422
    disguised = await upload(b"MZ\x90\x00 an executable", "application/pdf")
    assert disguised.status_code == 422 and "not a application/pdf" in disguised.json()["detail"]
    assert (await upload(PDF, "application/pdf", "../../etc/passwd")).status_code == 422
    assert (await upload(b"%PDF-" + b"x" * (5 * 1024 * 1024), "application/pdf")).status_code == 413
    assert await owner.fetchval("SELECT count(*) FROM case_documents WHERE case_id = $1", case_id) == before
