"""The audit trail: same-transaction recording, required purpose, hash chain and verify."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import httpx
import pytest
import structlog

from casemgr.audit import verify_chain
from casemgr.audit.repository import chain_page
from casemgr.audit.verify import row_hash
from casemgr.context import RequestContext
from casemgr.db import scoped_transaction
from casemgr.resources import Resources
from tests.conftest import World, audit_rows


async def test_reading_a_case_records_who_role_unit_action_object_purpose_outcome_and_time(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World, login_as: Any
) -> None:
    response = await client.get(
        f"/cases/{world.cases['cc_o1']}", headers=await login_as("off1", purpose="home visit tomorrow")
    )
    assert response.status_code == 200
    [row] = await audit_rows(owner, response.headers["x-request-id"])
    off1 = world.accounts["off1"]
    assert (row["actor_id"], row["actor_role"], row["actor_org_unit_id"]) == (
        off1.id,
        "officer",
        off1.unit.id,
    )
    assert (row["action"], row["object_type"], row["object_id"]) == (
        "case.read",
        "case",
        str(world.cases["cc_o1"]),
    )
    assert (row["purpose"], row["outcome"]) == ("home visit tomorrow", "success")
    assert row["at"].tzinfo is not None
    timestamp_text = await owner.fetchval(
        "SELECT to_char(at AT TIME ZONE 'UTC', 'US') FROM audit_log WHERE id = $1", row["id"]
    )
    assert len(timestamp_text) == 6  # microseconds are kept


async def test_a_sensitive_read_without_a_purpose_is_refused_with_428_and_audited(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World, login_as: Any
) -> None:
    response = await client.get(f"/cases/{world.cases['cc_o1']}", headers=await login_as("off1"))
    assert response.status_code == 428
    problem = response.json()
    assert "X-Purpose" in problem["detail"]
    assert problem["type"].endswith("purpose_required")
    [row] = await audit_rows(owner, response.headers["x-request-id"])
    assert (row["action"], row["outcome"], row["reason"]) == ("case.read", "denied", "purpose_missing")


async def test_an_export_needs_a_purpose_and_is_recorded_as_an_export(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World, login_as: Any
) -> None:
    refused = await client.get("/cases/export", headers=await login_as("sup_d1"))
    assert refused.status_code == 428
    response = await client.get("/cases/export", headers=await login_as("sup_d1", purpose="quarterly report"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.strip().splitlines()
    assert len(lines) == 1 + 3  # header + the three cases of district d1
    [row] = await audit_rows(owner, response.headers["x-request-id"])
    assert (row["action"], row["purpose"]) == ("case.export", "quarterly report")


async def test_when_the_audit_insert_fails_the_action_fails_and_nothing_is_written(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World, login_as: Any
) -> None:
    case_id = world.cases["cc_o1"]
    # A real failure inside PostgreSQL, not a mock: a trigger that rejects this one audit row.
    await owner.execute(f"""
        CREATE FUNCTION reject_audit_{case_id}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.action = 'case.update' AND NEW.object_id = '{case_id}' THEN
                RAISE EXCEPTION 'audit store unavailable';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER reject_audit_{case_id} BEFORE INSERT ON audit_log
            FOR EACH ROW EXECUTE FUNCTION reject_audit_{case_id}();
    """)
    try:
        response = await client.patch(
            f"/cases/{case_id}", json={"shared_with_police": False}, headers=await login_as("off1")
        )
    finally:
        await owner.execute(
            f"DROP TRIGGER reject_audit_{case_id} ON audit_log; DROP FUNCTION reject_audit_{case_id}()"
        )
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await owner.fetchval("SELECT shared_with_police FROM cases WHERE id = $1", case_id)


async def test_concurrent_auditing_transactions_keep_one_gapless_chain(
    resources: Resources,
    owner: asyncpg.Connection,
    world: World,
    login_as: Any,
    client: httpx.AsyncClient,
) -> None:
    headers = await login_as("sup_city", purpose="chain test")
    cases = list(world.cases.values())
    responses = await asyncio.gather(
        *(client.get(f"/cases/{cases[n % len(cases)]}", headers=headers) for n in range(40))
    )
    assert all(r.status_code == 200 for r in responses)
    report = await verify_chain(owner)
    assert report.ok, report
    assert report.rows_checked == await owner.fetchval("SELECT count(*) FROM audit_log")


# Texts chosen to break a naive canonical form: separators, the NULL marker, digits that
# look like length prefixes, and characters of several UTF-8 lengths.
TRICKY = [
    "",
    "~",
    ":",
    "1:",
    "0:~",
    "a:b:c",
    "~~~",
    "x" * 500,
    "巡查:回访",
    "🚨 alarm",
    "line\nbreak",
    "tab\there",
    "quote ' \" \\ backslash",
    "é" * 250,
]


def random_texts(n: int) -> list[str]:
    rng = random.Random(11643)
    alphabet = [
        chr(c)
        for c in [
            *range(0x20, 0x7F),
            *range(0xA0, 0x2FF),
            *range(0x4E00, 0x4E80),
            *range(0x1F300, 0x1F320),
            0x0A,
            0x09,
        ]
    ]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60))) for _ in range(n)]


async def test_python_and_postgresql_agree_on_the_canonical_form_of_any_row(
    resources: Resources, owner: asyncpg.Connection, world: World, login_as: Any
) -> None:
    """verify recomputes hashes in Python; any disagreement with SQL would show as a break."""
    from casemgr.auth.principal import MfaState, Principal, Role

    sup = world.accounts["sup_city"]
    principal = Principal(
        account_id=sup.id,
        role=Role.SUPERVISOR,
        org_unit_id=sup.unit.id,
        scope=sup.unit.path,
        session_id="x",
        mfa=MfaState.PASSED,
    )
    from casemgr import audit

    async with scoped_transaction(resources.pool, principal) as conn:
        for n, text in enumerate(TRICKY + random_texts(200)):
            ctx = RequestContext(request_id=f"canon-{n}", principal=principal, purpose=text or None)
            await audit.record(conn, ctx, "test.canonical", object_type="case", object_id=text[:64] or None)
    report = await verify_chain(owner)
    assert report.ok, report


async def _fresh_rows(
    owner: asyncpg.Connection, client: httpx.AsyncClient, headers: dict[str, str], case_id: int
) -> list[int]:
    ids = []
    for _ in range(3):
        response = await client.get(f"/cases/{case_id}", headers=headers)
        ids += [r["id"] for r in await audit_rows(owner, response.headers["x-request-id"])]
    return ids


@pytest.mark.parametrize("tamper", ["edit", "delete_middle", "delete_last", "edit_and_rehash"])
async def test_verify_reports_the_first_broken_link(
    tamper: str,
    client: httpx.AsyncClient,
    owner: asyncpg.Connection,
    world: World,
    login_as: Any,
    database_url: str,
) -> None:
    headers = await login_as("off1", purpose="tamper test")
    ids = await _fresh_rows(owner, client, headers, world.cases["cc_o1"])
    target = ids[1]
    # The owner can rewrite history in the database (the application role cannot); what it
    # cannot do is rewrite it unseen. Each tampering is rolled back after the verify.
    transaction = owner.transaction()
    await transaction.start()
    try:
        if tamper == "edit":
            await owner.execute("UPDATE audit_log SET purpose = 'nothing to see' WHERE id = $1", target)
        elif tamper == "delete_middle":
            await owner.execute("DELETE FROM audit_log WHERE id = $1", target)
        elif tamper == "edit_and_rehash":
            # Rewrite the row and recompute its own hash correctly: the row now verifies,
            # but the next row's prev_hash no longer matches.
            await owner.execute("UPDATE audit_log SET purpose = 'nothing' WHERE id = $1", target)
            [row] = await chain_page(owner, target - 1, 1)
            await owner.execute(
                "UPDATE audit_log SET hash = $2 WHERE id = $1", target, row_hash(row.prev_hash, row)
            )
        else:
            target = await owner.fetchval("SELECT max(id) FROM audit_log")
            await owner.execute("DELETE FROM audit_log WHERE id = $1", target)
        report = await verify_chain(owner)
    finally:
        await transaction.rollback()
    assert not report.ok
    if tamper == "edit_and_rehash":
        assert report.first_broken_id == target + 1
    else:
        assert report.first_broken_id == target
    assert report.problem


async def test_no_personal_value_reaches_the_logs_or_the_audit_row(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World, login_as: Any
) -> None:
    marker = "Zhang Marker-7731"
    with structlog.testing.capture_logs() as logs:
        created = await client.post(
            "/cases",
            headers=await login_as("off1"),
            json={
                "person": {"full_name": marker, "sex": "female", "birth_date": "1975-05-05"},
                "program": "drug_rehab",
                "org_unit_id": world.units["o1"].id,
            },
        )
        assert created.status_code == 201, created.text
        read = await client.get(
            f"/cases/{created.json()['id']}", headers=await login_as("off1", purpose="intake check")
        )
        assert read.status_code == 200
        assert read.json()["person"]["full_name"] == marker
    assert logs, "the requests were logged"
    assert marker not in repr(logs)
    rows = []
    for response in (created, read):
        rows += await audit_rows(owner, response.headers["x-request-id"])
    assert rows and marker not in repr([dict(r) for r in rows])


async def test_a_purpose_written_in_chinese_is_recorded_as_written(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World, login_as: Any
) -> None:
    headers: dict[str, Any] = await login_as("off1")
    headers["X-Purpose"] = "走访前核实住址".encode()  # UTF-8 bytes on the wire
    response = await client.get(f"/cases/{world.cases['cc_o1']}", headers=headers)
    assert response.status_code == 200
    [row] = await audit_rows(owner, response.headers["x-request-id"])
    assert row["purpose"] == "走访前核实住址"
