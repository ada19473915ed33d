"""The console's forms beyond reading: a monitoring order asked for, decided by a supervisor who
did not ask for it, fitted with a device, renewed and ended; zones with curfew hours added and
removed on the map; tasks completed from the case file; the case's open alerts shown in it. Each
form goes through the same service as the API, so the same rules refuse the same mistakes, and
the officer is told which."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from tracking.contract import DeviceConfig

from casemgr.clock import ManualClock
from casemgr.config import Settings
from casemgr.resources import Resources
from tests.conftest import World
from tests.integration.console_pages import (
    console_client,
    csrf_of,
    every_label_used,
    log_in,
    unlabelled_fields,
)
from tests.integration.test_monitoring import new_cc_case

PURPOSE = {"purpose": "case.purpose.review"}
SHANGHAI = ZoneInfo("Asia/Shanghai")
Browser = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def browser(settings: Settings, resources: Resources, world: World, clock: ManualClock) -> Browser:
    """A console session of one of the world's accounts, in a client of its own."""

    def open_as(name: str) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        async def opened() -> AsyncIterator[httpx.AsyncClient]:
            async with console_client(settings, resources) as client:
                assert (await log_in(client, world, clock, name)).status_code == 303
                yield client

        return asynccontextmanager(opened)()

    return open_as


def local(at: Any) -> str:
    return str(at.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M"))


async def case_file(client: httpx.AsyncClient, case_id: int) -> str:
    page = await client.get(f"/console/cases/{case_id}", params=PURPOSE)
    assert page.status_code == 200, page.text
    return page.text


async def test_an_order_is_requested_decided_fitted_renewed_and_ended_from_the_case_file(
    browser: Browser, world: World, owner: Any, clock: ManualClock, resources: Resources
) -> None:
    case_id = await new_cc_case(owner, world)
    now = clock.now()
    async with browser("off1") as officer, browser("sup_d1") as supervisor:
        shown = await case_file(officer, case_id)
        assert 'id="monitoring"' in shown and 'id="order-request"' in shown
        assert not unlabelled_fields(shown)
        every_label_used(shown, "zh-CN")
        form = {
            "csrf": csrf_of(shown),
            **PURPOSE,
            "reason_code": "court_curfew",
            "legal_basis": "judgment (2026) 17",
            "assessment_ref": "RA-2026-17",
            "starts_at": local(now),
            "ends_at": local(now + timedelta(days=120)),
        }
        too_long = await officer.post(f"/console/cases/{case_id}/orders", data=form)
        assert too_long.status_code == 422 and "90 days" in too_long.text  # the rule, named
        no_reason = await officer.post(f"/console/cases/{case_id}/orders", data={**form, "reason_code": ""})
        assert no_reason.status_code == 422
        asked = await officer.post(
            f"/console/cases/{case_id}/orders", data={**form, "ends_at": local(now + timedelta(days=60))}
        )
        assert asked.status_code == 303, asked.text
        assert asked.headers["location"].endswith("#monitoring")
        order = await owner.fetchrow(
            "SELECT id, status::text, requested_by, time_zone, starts_at FROM monitoring_orders "
            "WHERE case_id = $1",
            case_id,
        )
        assert (order["status"], order["requested_by"]) == ("requested", world.accounts["off1"].id)
        assert order["time_zone"] == "Asia/Shanghai"
        assert abs(order["starts_at"] - now) < timedelta(minutes=1)  # typed in Shanghai time
        order_id = order["id"]

        # The requester sees no decision form, and may not decide by posting one either.
        mine = await case_file(officer, case_id)
        assert f"/orders/{order_id}/approve" not in mine
        refused = await officer.post(
            f"/console/cases/{case_id}/orders/{order_id}/approve", data={"csrf": csrf_of(mine), **PURPOSE}
        )
        assert refused.status_code == 403

        device_id = f"C-{case_id}"
        await owner.execute(
            "INSERT INTO devices (id, org_unit_id, secret_sealed, reporting_interval_s, registered_by, "
            "registered_at) VALUES ($1, $2, '\\x00', 60, $3, now())",
            device_id,
            world.units["o1"].id,
            world.accounts["sup_d1"].id,
        )
        fitted = await officer.post(
            f"/console/cases/{case_id}/orders/{order_id}/device",
            data={"csrf": csrf_of(mine), **PURPOSE, "device_id": device_id},
        )
        assert fitted.status_code == 303, fitted.text

        theirs = await case_file(supervisor, case_id)
        assert f'action="/console/cases/{case_id}/orders/{order_id}/approve"' in theirs
        approved = await supervisor.post(
            f"/console/cases/{case_id}/orders/{order_id}/approve",
            data={"csrf": csrf_of(theirs), **PURPOSE, "note": "curfew justified"},
        )
        assert approved.status_code == 303, approved.text
        row = await owner.fetchrow(
            "SELECT status::text, decision_note FROM monitoring_orders WHERE id = $1", order_id
        )
        assert tuple(row) == ("active", "curfew justified")
        # The tracking core was told: the device now reports under the order.
        blob = await resources.redis.get(resources.tracking.keyspace.device(device_id).blob)
        assert blob is not None and msgspec.msgpack.decode(blob, type=DeviceConfig).order_id == order_id

        in_force = await case_file(officer, case_id)
        assert "生效中" in in_force and f"/orders/{order_id}/renewals" in in_force
        renewal = {
            "csrf": csrf_of(in_force),
            **PURPOSE,
            "assessment_ref": "RA-2026-17",
            "new_ends_at": local(now + timedelta(days=80)),
        }
        same_assessment = await officer.post(
            f"/console/cases/{case_id}/orders/{order_id}/renewals", data=renewal
        )
        assert same_assessment.status_code == 422 and "new assessment" in same_assessment.text
        renewed = await officer.post(
            f"/console/cases/{case_id}/orders/{order_id}/renewals",
            data={**renewal, "assessment_ref": "RA-2026-31"},
        )
        assert renewed.status_code == 303, renewed.text
        renewal_id = await owner.fetchval(
            "SELECT id FROM monitoring_renewals WHERE order_id = $1 AND status = 'requested'", order_id
        )
        theirs = await case_file(supervisor, case_id)
        assert f"/renewals/{renewal_id}/approve" in theirs
        decided = await supervisor.post(
            f"/console/cases/{case_id}/orders/{order_id}/renewals/{renewal_id}/approve",
            data={"csrf": csrf_of(theirs), **PURPOSE},
        )
        assert decided.status_code == 303, decided.text
        ends_at = await owner.fetchval("SELECT ends_at FROM monitoring_orders WHERE id = $1", order_id)
        assert abs(ends_at - (now + timedelta(days=80))) < timedelta(minutes=1)

        no_reason = await officer.post(
            f"/console/cases/{case_id}/orders/{order_id}/end",
            data={"csrf": csrf_of(in_force), **PURPOSE, "reason": ""},
        )
        assert no_reason.status_code == 422
        ended = await officer.post(
            f"/console/cases/{case_id}/orders/{order_id}/end",
            data={"csrf": csrf_of(in_force), **PURPOSE, "reason": "order lifted by the court"},
        )
        assert ended.status_code == 303, ended.text
        assert await owner.fetchval("SELECT status::text FROM monitoring_orders WHERE id = $1", order_id) == (
            "ended"
        )
        again = await officer.post(
            f"/console/cases/{case_id}/orders/{order_id}/end",
            data={"csrf": csrf_of(in_force), **PURPOSE, "reason": "twice"},
        )
        assert again.status_code == 409
    actions = {
        r["action"]
        for r in await owner.fetch(
            "SELECT action FROM audit_log WHERE object_type = 'monitoring_order' AND object_id = $1",
            str(order_id),
        )
    }
    assert {"monitoring.order_request", "monitoring.order_approve", "monitoring.order_end"} <= actions


async def test_an_officer_of_another_office_can_neither_see_nor_ask_for_monitoring_of_a_case(
    browser: Browser, world: World, owner: Any, clock: ManualClock
) -> None:
    case_id = await new_cc_case(owner, world)
    async with browser("off3") as stranger:
        caseload = await stranger.get("/console/cases")
        form = {
            "csrf": csrf_of(caseload.text),
            **PURPOSE,
            "reason_code": "court_curfew",
            "legal_basis": "b",
            "assessment_ref": "a",
            "starts_at": local(clock.now()),
            "ends_at": local(clock.now() + timedelta(days=10)),
        }
        refused = await stranger.post(f"/console/cases/{case_id}/orders", data=form)
        assert refused.status_code in (403, 404)
    assert await owner.fetchval("SELECT count(*) FROM monitoring_orders WHERE case_id = $1", case_id) == 0


async def test_an_inclusion_zone_with_curfew_hours_is_added_listed_and_removed_on_the_map(
    browser: Browser, world: World, owner: Any
) -> None:
    case_id, order_id = world.cases["cc_o1"], world.orders["cc_o1"]
    async with browser("off1") as officer:
        page = await officer.get(f"/console/cases/{case_id}/map", params=PURPOSE)
        assert page.status_code == 200 and not unlabelled_fields(page.text)
        assert f'id="zone-{world.zones["cc_o1"]}"' in page.text  # the order's zone, listed
        home = {
            "csrf": csrf_of(page.text),
            **PURPOSE,
            "kind": "inclusion",
            "label": "Home",
            "shape": "circle",
            "centre": "121.4700,31.2300",
            "radius_m": "80",
            "day1": "1",
            "day2": "1",
            "day3": "1",
            "day4": "1",
            "day5": "1",
            "start": "22:00",
            "end": "06:00",
            "grace_minutes": "15",
        }
        added = await officer.post(f"/console/cases/{case_id}/zones", data=home)
        assert added.status_code == 303, added.text
        zone = await owner.fetchrow(
            "SELECT id, schedule::text, grace_minutes FROM zones WHERE order_id = $1 AND label = 'Home'",
            order_id,
        )
        assert msgspec.json.decode(zone["schedule"]) == [
            {"days": [1, 2, 3, 4, 5], "start": "22:00", "end": "06:00"}
        ]
        assert zone["grace_minutes"] == 15
        bad_hours = await officer.post(f"/console/cases/{case_id}/zones", data={**home, "start": "25:00"})
        assert bad_hours.status_code == 422
        listed = await officer.get(f"/console/cases/{case_id}/map", params=PURPOSE)
        assert f'id="zone-{zone["id"]}"' in listed.text and "周一" in listed.text
        removed = await officer.post(
            f"/console/cases/{case_id}/zones/{zone['id']}/remove",
            data={"csrf": csrf_of(listed.text), **PURPOSE},
        )
        assert removed.status_code == 303, removed.text
        assert await owner.fetchval("SELECT removed_at IS NOT NULL FROM zones WHERE id = $1", zone["id"])
    async with browser("off3") as stranger:
        other = await stranger.get("/console/cases")
        refused = await stranger.post(
            f"/console/cases/{case_id}/zones/{world.zones['cc_o1']}/remove",
            data={"csrf": csrf_of(other.text), **PURPOSE},
        )
        assert refused.status_code in (403, 404)
    assert await owner.fetchval("SELECT removed_at IS NULL FROM zones WHERE id = $1", world.zones["cc_o1"])


async def test_the_case_file_shows_open_tasks_and_alerts_and_a_task_is_completed_from_it(
    browser: Browser, world: World, owner: Any
) -> None:
    case_id, task_id, alert_id = world.cases["cc_o1"], world.tasks["cc_o1"], world.alerts["cc_o1"]
    async with browser("off1") as officer:
        shown = await case_file(officer, case_id)
        assert 'id="tasks"' in shown and "应进行的评估" in shown
        assert 'id="alerts-of-case"' in shown and "腕带被剪断" in shown
        assert f'href="/console/alerts?case_id={case_id}"' in shown
        empty = await officer.post(
            f"/console/cases/{case_id}/tasks/{task_id}/complete", data={"csrf": csrf_of(shown), **PURPOSE}
        )
        assert empty.status_code == 422
        done = await officer.post(
            f"/console/cases/{case_id}/tasks/{task_id}/complete",
            data={"csrf": csrf_of(shown), **PURPOSE, "note": "risk assessment RA-9 written"},
        )
        assert done.status_code == 303 and done.headers["location"].endswith("#tasks")
        row = await owner.fetchrow("SELECT status::text, note FROM tasks WHERE id = $1", task_id)
        assert tuple(row) == ("done", "risk assessment RA-9 written")
        # Done, it leaves the file (the next assessment, planned by the service, takes its place).
        assert f"/tasks/{task_id}/complete" not in await case_file(officer, case_id)

        inbox = await officer.get("/console/alerts", params={"case_id": case_id})
        assert f'id="alert-{alert_id}"' in inbox.text
        assert 'name="case_id"' in inbox.text  # acting on it comes back to this case's alerts
        resolved = await officer.post(
            f"/console/alerts/{alert_id}/resolve",
            data={
                "csrf": csrf_of(inbox.text),
                "case_id": str(case_id),
                "outcome": "device_fault",
                "note": "strap replaced",
            },
        )
        assert resolved.headers["location"] == f"/console/alerts?case_id={case_id}"
        assert f'id="alert-{alert_id}"' not in (await officer.get("/console/alerts")).text
        history = await officer.get("/console/alerts", params={"show": "resolved"})
        assert f'id="alert-{alert_id}"' in history.text
        assert 'id="alerts-of-case"' not in await case_file(officer, case_id)


async def test_a_health_worker_sees_no_monitoring_in_a_case_file(browser: Browser, world: World) -> None:
    async with browser("health_d1") as health_worker:
        page = await health_worker.get(f"/console/cases/{world.cases['smi_o1']}", params=PURPOSE)
        assert page.status_code == 200, page.text
        assert 'id="monitoring"' not in page.text and not unlabelled_fields(page.text)


async def test_every_console_page_names_each_of_its_form_fields(browser: Browser, world: World) -> None:
    async with browser("sup_d1") as supervisor:
        case_id = world.cases["cc_o1"]
        for path in (
            "/console/cases",
            "/console/alerts",
            "/console/handovers",
            "/console/dashboard",
            f"/console/cases/{case_id}",
            f"/console/cases/{case_id}?purpose=case.purpose.review",
            f"/console/cases/{case_id}/map?purpose=case.purpose.review",
        ):
            page = await supervisor.get(path)
            assert page.status_code == 200, path
            assert not unlabelled_fields(page.text), path
            assert 'class="skip" href="#main"' in page.text


async def test_the_case_file_links_the_persons_other_cases_the_caller_may_see(
    browser: Browser, world: World, owner: Any
) -> None:
    """A person in two programs (community corrections, and drug rehabilitation in the same
    office) is one person: each file leads to the other; a case of theirs in another district
    stays out of sight."""
    person = world.persons["cc_o1"]
    rehab = await owner.fetchval(
        "INSERT INTO cases (person_id, program, status, org_unit_id, officer_id) "
        "VALUES ($1, 'drug_rehab', 'active', $2, $3) RETURNING id",
        person,
        world.units["o1"].id,
        world.accounts["off1"].id,
    )
    elsewhere = await owner.fetchval(
        "INSERT INTO cases (person_id, program, status, org_unit_id, officer_id) "
        "VALUES ($1, 'released_prisoner', 'active', $2, $3) RETURNING id",
        person,
        world.units["o3"].id,
        world.accounts["off3"].id,
    )
    async with browser("off1") as officer:
        shown = await case_file(officer, world.cases["cc_o1"])
        assert f'href="/console/cases/{rehab}"' in shown and "该人员的其他案件" in shown
        assert f'href="/console/cases/{elsewhere}"' not in shown
        back = await case_file(officer, rehab)
        assert f'href="/console/cases/{world.cases["cc_o1"]}"' in back
