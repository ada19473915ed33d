"""Notifications: endpoints managed per org unit, and the dispatcher that empties the outbox.

The outbox is filled by the database in the alert's own transaction (a trigger), so an alert
committed is an alert queued for every endpoint over its unit. The dispatcher leases due rows,
delivers outside any transaction, and records the result: delivered, or retried after an
exponential backoff (10 s, 20 s, 40 s ... at most an hour), or dead after the last attempt,
where the backlog shows it.

Webhooks are POSTed as JSON with `X-Casemgr-Timestamp` and `X-Casemgr-Signature: sha256=<hex
HMAC-SHA256 of "<timestamp>." + body under the endpoint's secret>`; the body holds ids and
times only, so a receiver fetches the alert itself, with its own rights.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import structlog

from casemgr import audit
from casemgr.clock import Clock
from casemgr.context import RequestContext
from casemgr.crypto import Keyring
from casemgr.db import scoped_transaction
from casemgr.errors import Conflict, Forbidden, NotFound, ValidationFailed
from casemgr.notifications import repository
from casemgr.notifications.schemas import (
    BacklogRow,
    DispatchReport,
    Endpoint,
    EndpointCreate,
    EndpointCredentials,
)
from casemgr.notifications.sms import SmsSender
from casemgr.orgunits.service import subtree_path, unit_in_scope
from casemgr.supervision import repository as supervision
from casemgr.supervision.engine import system_principal

log = structlog.get_logger(__name__)
MAX_ATTEMPTS = 8
LEASE_SECONDS = 60
_BATCH = 100
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")
_NUMBER = re.compile(r"^\+?[0-9]{6,15}$")


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt: 10 s, doubling, at most an hour."""
    return timedelta(seconds=min(10 * 2 ** (attempts - 1), 3600))


def _aad(endpoint_id: int) -> bytes:
    return f"notification_endpoints.secret:{endpoint_id}".encode()


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


async def add_endpoint(
    conn: asyncpg.Connection, ctx: RequestContext, keyring: Keyring, data: EndpointCreate, now: datetime
) -> EndpointCredentials:
    await unit_in_scope(conn, ctx, data.org_unit_id, field="org_unit_id")
    if data.channel == "webhook" and not _URL.match(data.target):
        raise ValidationFailed("a webhook target is an http:// or https:// URL", field="target")
    if data.channel == "sms" and not _NUMBER.match(data.target):
        raise ValidationFailed("an SMS target is a phone number of 6 to 15 digits", field="target")
    secret = secrets.token_urlsafe(32) if data.channel == "webhook" else None
    # The secret is sealed with the endpoint's id as associated data, so it is sealed after
    # the row exists: insert with a placeholder, then seal.
    endpoint = await repository.insert_endpoint(
        conn,
        org_unit_id=data.org_unit_id,
        channel=data.channel,
        target=data.target,
        sealed=b"\x00" if secret else None,
        severities=[s.value for s in data.severities],
        by=ctx.caller.account_id,
        at=now,
    )
    if secret is not None:
        await repository.set_secret(conn, endpoint.id, keyring.seal(secret.encode(), _aad(endpoint.id)))
    await audit.record(
        conn, ctx, "notification.endpoint_add", object_type="notification_endpoint", object_id=endpoint.id
    )
    return EndpointCredentials(endpoint=endpoint, secret=secret)


async def list_endpoints(
    conn: asyncpg.Connection, ctx: RequestContext, org_unit_id: int | None
) -> list[Endpoint]:
    return await repository.endpoints(conn, await subtree_path(conn, ctx, org_unit_id))


async def deactivate(conn: asyncpg.Connection, ctx: RequestContext, endpoint_id: int) -> Endpoint:
    path = await repository.endpoint_path(conn, endpoint_id)
    if path is None:
        raise NotFound(f"notification endpoint {endpoint_id} does not exist")
    if not ctx.caller.sees(path):
        raise Forbidden(
            "the endpoint belongs to a unit outside your scope",
            reason="out_of_scope",
            object_type="notification_endpoint",
            object_id=endpoint_id,
        )
    if not await repository.deactivate(conn, endpoint_id):
        raise Conflict("the endpoint is inactive already")
    await audit.record(
        conn,
        ctx,
        "notification.endpoint_deactivate",
        object_type="notification_endpoint",
        object_id=endpoint_id,
    )
    found = await repository.endpoint(conn, endpoint_id)
    assert found is not None
    return found


async def backlog(conn: asyncpg.Connection, ctx: RequestContext, org_unit_id: int | None) -> list[BacklogRow]:
    return await repository.backlog(conn, await subtree_path(conn, ctx, org_unit_id))


async def _deliver(
    row: dict[str, Any], keyring: Keyring, http: httpx.AsyncClient, sms: SmsSender, now: datetime
) -> str | None:
    """None if delivered, else why not (short, no personal data)."""
    payload = row["payload"].encode()
    try:
        if row["channel"] == "webhook":
            secret = keyring.open(row["secret_sealed"], _aad(row["endpoint_id"]))
            timestamp = str(int(now.timestamp()))
            response = await http.post(
                row["target"],
                content=payload,
                headers={
                    "Content-Type": "application/json",
                    "X-Casemgr-Event": "alert",
                    "X-Casemgr-Delivery": str(row["id"]),
                    "X-Casemgr-Timestamp": timestamp,
                    "X-Casemgr-Signature": signature(secret, timestamp, payload),
                },
            )
            return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        event = msgspec.json.decode(payload)
        text = (
            f"casemgr: {event['severity']} alert {event['alert_id']} ({event['kind']}) "
            f"in unit {event['org_unit_id']}"
        )
        await sms.send(row["target"], text)
        return None
    except (httpx.HTTPError, OSError, TimeoutError) as e:
        return type(e).__name__


async def dispatch(
    pool: asyncpg.Pool, keyring: Keyring, http: httpx.AsyncClient, sms: SmsSender, now: datetime
) -> DispatchReport:
    """One pass over what is due, city by city as the system role."""
    async with pool.acquire() as conn:
        roots = await supervision.roots(conn)  # type: ignore[arg-type]
    delivered = retried = dead = 0
    for root_id, root_path in roots:
        principal = system_principal(root_id, root_path)
        async with scoped_transaction(pool, principal) as conn:
            rows = await repository.claim(conn, now, LEASE_SECONDS, _BATCH)
        if not rows:
            continue
        results = await asyncio.gather(*(_deliver(row, keyring, http, sms, now) for row in rows))
        async with scoped_transaction(pool, principal) as conn:
            for row, error in zip(rows, results, strict=True):
                if error is None:
                    await repository.delivered(conn, row["id"], now)
                    delivered += 1
                    continue
                attempts = row["attempts"] + 1
                last = attempts >= MAX_ATTEMPTS
                await repository.failed(conn, row["id"], error, now + backoff(attempts), last)
                dead += last
                retried += not last
    if delivered or dead:
        log.info("notifications_dispatched", delivered=delivered, retried=retried, dead=dead)
    return DispatchReport(delivered=delivered, retried=retried, dead=dead)


async def run_forever(
    pool: asyncpg.Pool, keyring: Keyring, sms: SmsSender, clock: Clock, *, every: timedelta
) -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        while True:
            try:
                await dispatch(pool, keyring, http, sms, clock.now())
            except (OSError, asyncpg.PostgresError) as e:
                log.warning("notification_dispatch_failed", error_type=type(e).__name__)
            await asyncio.sleep(every.total_seconds())
