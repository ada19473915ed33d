"""Retention: ping history goes once its order has been over for the retention period; the
people of cases closed longer than theirs are anonymised; each purge leaves an audit row that
names the order or the person and nothing of what was removed. Nothing younger is touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from casemgr.retention.service import run_once
from tests.conftest import World

PING_DAYS, CASE_DAYS = 180, 1825


async def add_pings(owner: asyncpg.Connection, world: World, case: str, at: datetime, count: int) -> None:
    await owner.execute("SELECT ensure_ping_partition($1)", at.date())
    order_id = world.orders[case]
    for seq in range(1, count + 1):
        await owner.execute(
            "INSERT INTO pings (device_id, seq, order_id, case_id, fixed_at, received_at, longitude, "
            "latitude, strap_state, case_state) VALUES ($1, $2, $3, $4, $5, $5, 121.4711, 31.2322, "
            "'intact', 'closed')",
            world.devices[case],
            seq,
            order_id,
            world.cases[case],
            at + timedelta(seconds=seq),
        )


async def audit_of(owner: asyncpg.Connection, action: str) -> list[asyncpg.Record]:
    return await owner.fetch("SELECT * FROM audit_log WHERE action = $1 ORDER BY id", action)


async def test_ping_history_is_purged_once_its_order_has_been_over_for_the_period_and_audited(
    owner: asyncpg.Connection, world: World
) -> None:
    now = datetime.now(UTC)
    long_over = now - timedelta(days=PING_DAYS + 1)
    await add_pings(owner, world, "cc_o1", long_over - timedelta(days=3), 5)
    await add_pings(owner, world, "cc_o3", now - timedelta(days=1), 5)
    await owner.execute(
        "UPDATE monitoring_orders SET status = 'ended', ended_at = $2, end_reason = 'term served' "
        "WHERE id = $1",
        world.orders["cc_o1"],
        long_over,
    )

    report = await run_once(owner, now, ping_days=PING_DAYS, closed_case_days=CASE_DAYS)

    counts = {
        r["order_id"]: r["n"]
        for r in await owner.fetch("SELECT order_id, count(*) AS n FROM pings GROUP BY order_id")
    }
    assert world.orders["cc_o1"] not in counts
    assert counts[world.orders["cc_o3"]] == 5  # its order is in force
    assert (report.pings_purged, report.orders_purged >= 1) == (5, True)
    rows = await audit_of(owner, "retention.pings_purged")
    assert [r["object_id"] for r in rows if r["object_id"] == str(world.orders["cc_o1"])] == [
        str(world.orders["cc_o1"])
    ]
    assert all(r["reason"] == "retention_period_passed" and r["outcome"] == "success" for r in rows)
    assert "121.47" not in str([dict(r) for r in rows])  # no position went into the audit
    again = await run_once(owner, now, ping_days=PING_DAYS, closed_case_days=CASE_DAYS)
    assert again.pings_purged == 0


async def test_people_of_long_closed_cases_are_anonymised_and_the_rest_are_not(
    owner: asyncpg.Connection, world: World
) -> None:
    now = datetime.now(UTC)
    person_id = world.persons["drug_o2"]
    name = await owner.fetchval("SELECT full_name FROM persons WHERE id = $1", person_id)
    await owner.execute(
        "UPDATE persons SET aliases = '{Xiao Er}', phones = '[{\"number\": \"13800000000\"}]', "
        "id_number = '11010519800101001X' WHERE id = $1",
        person_id,
    )
    await owner.execute(
        "INSERT INTO person_addresses (person_id, kind, address, valid_from) "
        "VALUES ($1, 'residence', '12 Harbour Road', '2020-01-01')",
        person_id,
    )
    closed_long_ago = now - timedelta(days=CASE_DAYS + 10)
    await owner.execute(
        "UPDATE cases SET status = 'closed', closure_reason = 'term_expired', closed_at = $2 WHERE id = $1",
        world.cases["drug_o2"],
        closed_long_ago,
    )
    # Closed lately: kept as it is.
    await owner.execute(
        "UPDATE cases SET status = 'closed', closure_reason = 'term_expired', closed_at = $2 WHERE id = $1",
        world.cases["smi_o1"],
        now - timedelta(days=30),
    )

    report = await run_once(owner, now, ping_days=PING_DAYS, closed_case_days=CASE_DAYS)

    assert report.people_anonymised == 1
    person = await owner.fetchrow("SELECT * FROM persons WHERE id = $1", person_id)
    assert person["full_name"] == "(anonymised)" and person["id_number"] is None
    assert (person["aliases"], person["phones"], person["name_pinyin"]) == ([], "[]", "")
    assert person["birth_date"].month == 1 and person["birth_date"].day == 1
    assert await owner.fetchval("SELECT count(*) FROM person_addresses WHERE person_id = $1", person_id) == 0
    case = await owner.fetchrow("SELECT * FROM cases WHERE id = $1", world.cases["drug_o2"])
    assert case["details"] is None and case["sealed_details"] is None
    assert (case["program"], case["status"]) == ("drug_rehab", "closed")  # still counted
    for table in ("case_notes", "case_documents"):
        held = await owner.fetchval(
            f"SELECT count(*) FROM {table} WHERE case_id = $1", world.cases["drug_o2"]
        )
        assert held == 0, table
    assert (
        await owner.fetchval("SELECT count(*) FROM case_documents WHERE case_id = $1", world.cases["smi_o1"])
        > 0
    )
    kept = await owner.fetchval("SELECT full_name FROM persons WHERE id = $1", world.persons["smi_o1"])
    assert kept != "(anonymised)"
    rows = await audit_of(owner, "retention.person_anonymised")
    assert [r["object_id"] for r in rows] == [str(person_id)]
    everything_audited = str([dict(r) for r in await owner.fetch("SELECT * FROM audit_log")])
    assert name not in everything_audited and "Harbour Road" not in everything_audited
    again = await run_once(owner, now, ping_days=PING_DAYS, closed_case_days=CASE_DAYS)
    assert again.people_anonymised == 0
