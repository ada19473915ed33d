"""Retention: ping history is purged `retention_ping_days` after its order ended, and the people
of closed cases are anonymised `retention_closed_case_days` after their last case closed.

Each order purged and each person anonymised is one transaction with its audit row, which names
the order or the person and nothing of what was removed; a run stopped halfway leaves every item
done or untouched, and the next run goes on from there. It runs as the database owner (it must
reach every unit's records, which no officer's scope does): `casemgr retention run`, daily.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from casemgr import audit
from casemgr.context import RequestContext
from casemgr.retention import repository

log = structlog.get_logger(__name__)
BATCH = 500


@dataclass(frozen=True, slots=True)
class RetentionReport:
    orders_purged: int
    pings_purged: int
    people_anonymised: int


async def run_once(
    conn: asyncpg.Connection, now: datetime, *, ping_days: int, closed_case_days: int
) -> RetentionReport:
    ctx = RequestContext(request_id=f"retention-{now:%Y%m%dT%H%M%S}", principal=None)
    orders = pings = people = 0
    while batch := await repository.orders_to_purge(conn, now - timedelta(days=ping_days), BATCH):
        for order_id in batch:
            async with conn.transaction():
                pings += await repository.purge_pings(conn, order_id, now)
                await audit.record(
                    conn,
                    ctx,
                    "retention.pings_purged",
                    object_type="monitoring_order",
                    object_id=order_id,
                    reason="retention_period_passed",
                )
            orders += 1
    while batch := await repository.people_to_anonymise(conn, now - timedelta(days=closed_case_days), BATCH):
        for person_id in batch:
            async with conn.transaction():
                await repository.anonymise(conn, person_id, now)
                await audit.record(
                    conn,
                    ctx,
                    "retention.person_anonymised",
                    object_type="person",
                    object_id=person_id,
                    reason="retention_period_passed",
                )
            people += 1
    report = RetentionReport(orders_purged=orders, pings_purged=pings, people_anonymised=people)
    log.info("retention_run", **{k: getattr(report, k) for k in report.__slots__})
    return report
