"""The officers' inbox: what each caller sees and counts, the lifecycle of an alert, and
escalation of what nobody acknowledges in time (driven with chosen times, not the wall clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
from tracking.contract import DeviceConfig, secret_associated_data
from tracking.ingest import Ingest
from tracking.publishing import publish_device

from casemgr.alerts.service import escalate
from casemgr.resources import Resources
from tests.conftest import World, audit_rows


async def add_alert(
    owner: asyncpg.Connection,
    world: World,
    case: str,
    unit: str,
    kind: str,
    severity: str,
    minutes_ago: int = 0,
) -> int:
    alert_id: int = await owner.fetchval(
        "INSERT INTO alerts (kind, severity, org_unit_id, case_id, raised_at, details, dedupe_key) "
        "VALUES ($1, $2, $3, $4, now() - $5 * interval '1 minute', '{}', $6) RETURNING id",
        kind,
        severity,
        world.units[unit].id,
        world.cases[case],
        minutes_ago,
        f"test:{kind}:{world.cases[case]}:{minutes_ago}",
    )
    return alert_id


async def test_the_inbox_filters_and_counts_what_lies_in_the_callers_scope(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any
) -> None:
    old = await add_alert(owner, world, "cc_o1", "c1", "no_signal", "serious", minutes_ago=90)
    await add_alert(owner, world, "drug_o2", "o2", "task_overdue", "warning")
    sup_d1 = await login_as("sup_d1")
    everything = (await client.get("/alerts", headers=sup_d1)).json()["items"]
    assert {a["kind"] for a in everything} == {"strap_tamper", "no_signal", "task_overdue"}
    assert world.alerts["cc_o3"] not in [a["id"] for a in everything]  # district d2's
    critical = (await client.get("/alerts", params={"severity": "critical"}, headers=sup_d1)).json()["items"]
    assert [a["id"] for a in critical] == [world.alerts["cc_o1"]]
    waiting = (await client.get("/alerts", params={"older_than_minutes": 60}, headers=sup_d1)).json()["items"]
    assert [a["id"] for a in waiting] == [old]
    mine = (await client.get("/alerts", params={"mine": "true"}, headers=await login_as("off2"))).json()[
        "items"
    ]
    assert [a["kind"] for a in mine] == ["task_overdue"]
    counts = (await client.get("/alerts/counts", headers=sup_d1)).json()
    assert counts["total"] == 3
    assert {(c["status"], c["severity"], c["count"]) for c in counts["by_status_and_severity"]} == {
        ("new", "critical", 1),
        ("new", "serious", 1),
        ("new", "warning", 1),
    }
    other = (await client.get("/alerts/counts", headers=await login_as("sup_d2"))).json()
    assert other["total"] == 1  # only d2's own


async def test_an_alert_of_another_district_is_refused_and_the_refusal_audited(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any
) -> None:
    for path in (f"/alerts/{world.alerts['cc_o1']}", f"/alerts/{world.alerts['cc_o1']}/acknowledge"):
        method = "GET" if path.endswith(str(world.alerts["cc_o1"])) else "POST"
        response = await client.request(method, path, headers=await login_as("sup_d2"))
        assert response.status_code == 403
        rows = await audit_rows(owner, response.headers["x-request-id"])
        assert [(r["outcome"], r["reason"]) for r in rows] == [("denied", "out_of_scope")]


async def test_an_alert_is_acknowledged_then_resolved_with_an_outcome_and_a_note_each_step_audited(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any
) -> None:
    alert_id = await add_alert(owner, world, "cc_o1", "c1", "exclusion_zone_entered", "critical")
    officer = await login_as("off1")
    acked = await client.post(f"/alerts/{alert_id}/acknowledge", headers=officer)
    assert acked.status_code == 200
    assert (acked.json()["status"], acked.json()["acknowledged_by"]) == (
        "acknowledged",
        world.accounts["off1"].id,
    )
    assert (await client.post(f"/alerts/{alert_id}/acknowledge", headers=officer)).status_code == 409
    no_note = await client.post(
        f"/alerts/{alert_id}/resolve", json={"outcome": "false_alarm"}, headers=officer
    )
    assert no_note.status_code == 422
    assert [e["field"] for e in no_note.json()["errors"]] == ["note"]
    bad_outcome = await client.post(
        f"/alerts/{alert_id}/resolve", json={"outcome": "shrug", "note": "x x x"}, headers=officer
    )
    assert bad_outcome.status_code == 422
    resolved = await client.post(
        f"/alerts/{alert_id}/resolve",
        json={"outcome": "confirmed_violation", "note": "seen at the school gate by the officer"},
        headers=officer,
    )
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert (body["status"], body["outcome"], body["resolved_by"]) == (
        "resolved",
        "confirmed_violation",
        world.accounts["off1"].id,
    )
    again = await client.post(
        f"/alerts/{alert_id}/resolve", json={"outcome": "false_alarm", "note": "again"}, headers=officer
    )
    assert again.status_code == 409
    actions = await owner.fetch(
        "SELECT action, actor_id, reason FROM audit_log WHERE object_type = 'alert' AND object_id = $1 "
        "ORDER BY id",
        str(alert_id),
    )
    assert [(r["action"], r["actor_id"]) for r in actions] == [
        ("alert.acknowledge", world.accounts["off1"].id),
        ("alert.resolve", world.accounts["off1"].id),
    ]
    assert actions[1]["reason"] == "confirmed_violation"


async def test_resolving_a_strap_tamper_closes_it_in_the_tracking_core_so_the_next_cut_alerts_again(
    client: httpx.AsyncClient, world: World, login_as: Any, resources: Resources
) -> None:
    device_id = world.devices["cc_o1"]
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    config = DeviceConfig(
        device_id=device_id,
        version=10**9,
        secret=resources.keyring.seal(b"strap-secret", secret_associated_data(device_id)),
        interval_s=60,
        order_id=world.orders["cc_o1"],
        case_id=world.cases["cc_o1"],
        org_unit_id=world.units["c1"].id,
        starts_at_ms=now_ms - 86_400_000,
        ends_at_ms=now_ms + 86_400_000,
    )
    link = resources.tracking
    await publish_device(link.scripts, link.keyspace, config, now_ms=now_ms)
    ingest = Ingest(
        redis=resources.redis, scripts=link.scripts, keyring=resources.keyring, keyspace=link.keyspace
    )

    async def cut(seq: int) -> None:
        ping = {
            "device_id": device_id,
            "seq": seq,
            "fix_time": datetime.now(UTC).isoformat(),
            "strap_state": "cut",
        }
        await ingest.upload(
            device_id=device_id,
            authorization="Bearer strap-secret",
            signature=None,
            content_type="application/json",
            body=msgspec.json.encode(ping),
        )

    async def raised() -> int:
        entries = await resources.redis.xrange(link.keyspace.device(device_id).shard.alerts)
        return sum(1 for _, f in entries if f[b"dev"] == device_id.encode() and f[b"act"] == b"raise")

    await cut(1)
    await cut(2)
    assert await raised() == 1  # the condition is open: no second alert
    resolved = await client.post(
        f"/alerts/{world.alerts['cc_o1']}/resolve",
        json={"outcome": "device_fault", "note": "strap replaced at the office"},
        headers=await login_as("off1"),
    )
    assert resolved.status_code == 200
    await cut(3)
    assert await raised() == 2


async def test_an_alert_nobody_acknowledges_goes_to_the_office_then_one_level_up_and_never_twice(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any, resources: Resources
) -> None:
    alert_id = world.alerts["cc_o1"]  # critical: 5 minutes; raised in unit c1, under office o1
    raised_at: datetime = await owner.fetchval("SELECT raised_at FROM alerts WHERE id = $1", alert_id)
    acked = await add_alert(owner, world, "cc_o1", "c1", "no_signal", "critical")
    await client.post(f"/alerts/{acked}/acknowledge", headers=await login_as("off1"))

    async def level() -> tuple[int, int | None]:
        row = await owner.fetchrow(
            "SELECT escalation_level, escalated_to_unit_id FROM alerts WHERE id = $1", alert_id
        )
        return row[0], row[1]

    await escalate(resources.pool, raised_at + timedelta(minutes=4))
    assert await level() == (0, None)
    await escalate(resources.pool, raised_at + timedelta(minutes=5, seconds=1))
    assert await level() == (1, world.units["o1"].id)
    await escalate(resources.pool, raised_at + timedelta(minutes=5, seconds=2))  # a second scheduler
    assert await level() == (1, world.units["o1"].id)
    await escalate(resources.pool, raised_at + timedelta(minutes=10, seconds=2))
    assert await level() == (2, world.units["d1"].id)
    escalated = (
        await client.get("/alerts", params={"escalated_to_me": "true"}, headers=await login_as("sup_d1"))
    ).json()["items"]
    assert [a["id"] for a in escalated] == [alert_id]
    assert await owner.fetchval("SELECT escalation_level FROM alerts WHERE id = $1", acked) == 0
    audited = await owner.fetch(
        "SELECT reason FROM audit_log WHERE action = 'alert.escalate' AND object_id = $1 ORDER BY id",
        str(alert_id),
    )
    assert [r["reason"] for r in audited] == [
        f"level_1_to_unit_{world.units['o1'].id}",
        f"level_2_to_unit_{world.units['d1'].id}",
    ]


async def test_an_authorised_absence_covers_its_zones_alerts_which_are_kept_but_never_escalate(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection, login_as: Any, resources: Resources
) -> None:
    order_id, zone_id = world.orders["cc_o1"], world.zones["cc_o1"]
    officer = await login_as("off1")
    now = datetime.now(UTC)

    async def tracking_alert(kind: str, zone: int, minutes_ago: int) -> int:
        alert_id: int = await owner.fetchval(
            "INSERT INTO alerts (kind, severity, org_unit_id, case_id, order_id, raised_at, details, "
            "dedupe_key, event_id) VALUES ($1, 'critical', $2, $3, $4, now() - $5 * interval '1 minute', "
            "$6::jsonb, $7, $7) RETURNING id",
            kind,
            world.units["c1"].id,
            world.cases["cc_o1"],
            order_id,
            minutes_ago,
            f'{{"zone_id": {zone}}}',
            f"em:test:{kind}:{zone}:{minutes_ago}",
        )
        return alert_id

    before = await tracking_alert("inclusion_zone_left", zone_id, 30)  # raised before the grant
    grant = {
        "zone_ids": [zone_id],
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=2)).isoformat(),
        "reason": "approved travel to the provincial hospital",
    }
    granted = await client.post(f"/monitoring-orders/{order_id}/absences", json=grant, headers=officer)
    assert granted.status_code == 201, granted.text
    absence_id = granted.json()["id"]
    during = await tracking_alert("exclusion_zone_entered", zone_id, 0)
    elsewhere = await tracking_alert("exclusion_zone_entered", zone_id + 10_000, 1)  # not a covered zone
    covered = {
        r["id"]: r["covered_by_absence_id"]
        for r in await owner.fetch(
            "SELECT id, covered_by_absence_id FROM alerts WHERE id = ANY($1::bigint[])",
            [before, during, elsewhere],
        )
    }
    assert covered == {before: absence_id, during: absence_id, elsewhere: None}
    await escalate(resources.pool, now + timedelta(hours=1))
    levels = {
        r["id"]: r["escalation_level"]
        for r in await owner.fetch(
            "SELECT id, escalation_level FROM alerts WHERE id = ANY($1::bigint[])",
            [before, during, elsewhere],
        )
    }
    assert levels == {before: 0, during: 0, elsewhere: 1}
    listed = (await client.get(f"/alerts/{during}", headers=officer)).json()
    assert listed["covered_by_absence_id"] == absence_id
    revoked = await client.post(
        f"/monitoring-orders/{order_id}/absences/{absence_id}/revoke", headers=officer
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_by"] == world.accounts["off1"].id


async def test_an_absence_names_zones_of_its_order_and_lasts_at_most_31_days(
    client: httpx.AsyncClient, world: World, login_as: Any
) -> None:
    now = datetime.now(UTC)
    base = {"starts_at": now.isoformat(), "reason": "travel"}
    officer = await login_as("off1")
    foreign = await client.post(
        f"/monitoring-orders/{world.orders['cc_o1']}/absences",
        json=base | {"zone_ids": [world.zones["cc_o3"]], "ends_at": (now + timedelta(days=1)).isoformat()},
        headers=officer,
    )
    assert foreign.status_code == 422 and foreign.json()["errors"][0]["field"] == "zone_ids"
    too_long = await client.post(
        f"/monitoring-orders/{world.orders['cc_o1']}/absences",
        json=base | {"zone_ids": [world.zones["cc_o1"]], "ends_at": (now + timedelta(days=32)).isoformat()},
        headers=officer,
    )
    assert (too_long.status_code, too_long.json()["rule"]) == (422, "at_most_31_days")
