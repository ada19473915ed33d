"""Notifications: the outbox filled in the alert's transaction, signed webhooks to a real HTTP
receiver on loopback, retries with backoff, the dead letter, SMS behind its interface, and the
backlog."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from casemgr.notifications.service import MAX_ATTEMPTS, dispatch, signature
from casemgr.resources import Resources
from tests.conftest import World


@dataclass
class Receiver:
    """A webhook receiver on a loopback port: answers with the next status of `statuses`
    (200 when none is left) and keeps what it received."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.append((headers, body))
        status = self.statuses.pop(0) if self.statuses else 200
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    yield found
    server.close()
    await server.wait_closed()


@dataclass
class RecordingSms:
    """The SMS interface, as a gateway adapter implements it: here it keeps the messages."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, number: str, text: str) -> None:
        self.sent.append((number, text))


async def add_webhook(
    client: httpx.AsyncClient, login_as: Any, world: World, port: int, unit: str = "o1"
) -> dict:
    response = await client.post(
        "/notification-endpoints",
        json={
            "org_unit_id": world.units[unit].id,
            "channel": "webhook",
            "target": f"http://127.0.0.1:{port}/hook",
        },
        headers=await login_as("sup_d1"),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def raise_alert(owner: asyncpg.Connection, world: World, severity: str = "critical") -> int:
    alert_id: int = await owner.fetchval(
        "INSERT INTO alerts (kind, severity, org_unit_id, case_id, raised_at, details, dedupe_key) "
        "VALUES ('exclusion_zone_entered', $1, $2, $3, now(), '{}', $4) RETURNING id",
        severity,
        world.units["c1"].id,
        world.cases["cc_o1"],
        f"notify:{world.cases['cc_o1']}:{datetime.now(UTC).timestamp()}",
    )
    return alert_id


async def test_an_alert_is_queued_in_its_own_transaction_and_posted_signed_with_ids_only(
    client: httpx.AsyncClient,
    world: World,
    owner: asyncpg.Connection,
    login_as: Any,
    resources: Resources,
    receiver: Receiver,
) -> None:
    created = await add_webhook(client, login_as, world, receiver.port)
    secret = created["secret"]
    assert secret and created["endpoint"]["severities"] == ["critical", "serious"]
    alert_id = await raise_alert(owner, world)
    await raise_alert(owner, world, severity="info")  # below the endpoint's severities
    queued = await owner.fetch(
        "SELECT alert_id FROM notification_outbox WHERE endpoint_id = $1", created["endpoint"]["id"]
    )
    assert [r["alert_id"] for r in queued] == [alert_id]
    async with httpx.AsyncClient(timeout=5) as http:
        report = await dispatch(resources.pool, resources.keyring, http, RecordingSms(), datetime.now(UTC))
    assert report.delivered >= 1
    [(headers, body)] = [(h, b) for h, b in receiver.received if json.loads(b)["alert_id"] == alert_id]
    assert headers["x-casemgr-signature"] == signature(secret.encode(), headers["x-casemgr-timestamp"], body)
    event = json.loads(body)
    assert set(event) == {"alert_id", "kind", "severity", "org_unit_id", "case_id", "raised_at"}
    status = await owner.fetchval(
        "SELECT status::text FROM notification_outbox WHERE alert_id = $1", alert_id
    )
    assert status == "delivered"


async def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
    client: httpx.AsyncClient,
    world: World,
    owner: asyncpg.Connection,
    login_as: Any,
    resources: Resources,
    receiver: Receiver,
) -> None:
    await add_webhook(client, login_as, world, receiver.port)
    alert_id = await raise_alert(owner, world)
    receiver.statuses = [500, 503]
    now = datetime.now(UTC)

    async def attempt(at: datetime) -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            await dispatch(resources.pool, resources.keyring, http, RecordingSms(), at)

    async def row() -> tuple[str, int, datetime]:
        r = await owner.fetchrow(
            "SELECT status::text, attempts, next_attempt_at FROM notification_outbox WHERE alert_id = $1",
            alert_id,
        )
        return r[0], r[1], r[2]

    await attempt(now)
    status, attempts, next_at = await row()
    assert (status, attempts) == ("pending", 1) and next_at == now + timedelta(seconds=10)
    await attempt(now + timedelta(seconds=5))  # not due yet: nothing sent
    assert (await row())[1] == 1
    await attempt(now + timedelta(seconds=11))
    status, attempts, next_at = await row()
    assert (status, attempts) == ("pending", 2) and next_at == now + timedelta(seconds=31)
    await attempt(now + timedelta(seconds=32))
    assert (await row())[:2] == ("delivered", 3)


async def test_after_the_last_attempt_a_notification_is_dead_and_the_backlog_shows_it(
    client: httpx.AsyncClient,
    world: World,
    owner: asyncpg.Connection,
    login_as: Any,
    resources: Resources,
    receiver: Receiver,
) -> None:
    created = await add_webhook(client, login_as, world, receiver.port)
    alert_id = await raise_alert(owner, world)
    receiver.statuses = [500] * MAX_ATTEMPTS
    at = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(MAX_ATTEMPTS):
            await dispatch(resources.pool, resources.keyring, http, RecordingSms(), at)
            at += timedelta(hours=2)
    status = await owner.fetchval(
        "SELECT status::text FROM notification_outbox WHERE alert_id = $1", alert_id
    )
    assert status == "dead"
    backlog = (await client.get("/notification-endpoints/backlog", headers=await login_as("sup_d1"))).json()
    mine = next(b for b in backlog if b["endpoint_id"] == created["endpoint"]["id"])
    assert (mine["dead"], mine["pending"]) == (1, 0)


async def test_sms_endpoints_send_a_short_text_through_the_sender_interface(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any, resources: Resources
) -> None:
    response = await client.post(
        "/notification-endpoints",
        json={"org_unit_id": world.units["o1"].id, "channel": "sms", "target": "+8613912345678"},
        headers=await login_as("sup_d1"),
    )
    assert response.status_code == 201 and response.json()["secret"] is None
    alert_id = await raise_alert(owner, world)
    sms = RecordingSms()
    async with httpx.AsyncClient(timeout=5) as http:
        await dispatch(resources.pool, resources.keyring, http, sms, datetime.now(UTC))
    assert (
        "+8613912345678",
        f"casemgr: critical alert {alert_id} (exclusion_zone_entered) in unit {world.units['c1'].id}",
    ) in sms.sent


async def test_an_endpoint_target_must_be_a_url_or_a_number(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    response = await client.post(
        "/notification-endpoints",
        json={"org_unit_id": world.units["o1"].id, "channel": "webhook", "target": "ftp://x"},
        headers=await login_as("sup_d1"),
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "target"
