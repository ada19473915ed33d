"""The officers' console: pages in zh-CN by default and English by a switch, every label from the
catalogs, login with TOTP into an HttpOnly Secure SameSite cookie, CSRF on forms, a CSP with no
inline script, the caseload with search by pinyin initials, and the case file behind a purpose."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from msgspec import inspect as mi

from casemgr.cases.programs import ProgramDetail
from casemgr.clock import ManualClock
from casemgr.config import Settings
from casemgr.console.i18n import catalog
from casemgr.resources import Resources
from tests.conftest import PASSWORD, World, totp_code
from tests.integration.console_pages import console_client, csrf_of, every_label_used, log_in

CSP_NO_INLINE = re.compile(r"script-src 'self'(;|$)")


def test_both_catalogs_hold_the_same_labels() -> None:
    assert catalog("zh-CN").keys() == catalog("en").keys()
    assert all(catalog("zh-CN").values()) and all(catalog("en").values())


def _names_and_choices(of: Any, fields: set[str], choices: set[str]) -> None:
    """Every field name and every fixed choice (a Literal's strings) in a type, nested."""
    if isinstance(of, mi.StructType):
        for field in of.fields:
            if field.name not in fields:
                fields.add(field.name)
                _names_and_choices(field.type, fields, choices)
    elif isinstance(of, mi.UnionType):
        for member in of.types:
            _names_and_choices(member, fields, choices)
    elif isinstance(of, mi.ListType | mi.Metadata):
        _names_and_choices(of.item_type if isinstance(of, mi.ListType) else of.type, fields, choices)
    elif isinstance(of, mi.LiteralType):
        choices.update(value for value in of.values if isinstance(value, str))


def test_every_field_and_choice_of_a_programs_record_has_a_label() -> None:
    """The case file shows a program's record field by field: a field or a choice added to a
    program later must come with its labels, or the officer reads a bare identifier."""
    fields: set[str] = set()
    choices: set[str] = set()
    _names_and_choices(mi.type_info(ProgramDetail), fields, choices)
    assert {"sentence_type", "risk_grade", "prison"} <= fields and "probation" in choices
    labels = catalog("zh-CN")
    assert sorted(f for f in fields - {"program"} if f"field.{f}" not in labels) == []
    assert sorted(c for c in choices if f"value.{c}" not in labels) == []


@pytest.fixture
async def client(settings: Settings, resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    async with console_client(settings, resources) as c:
        yield c


@pytest.fixture
async def officer(client: httpx.AsyncClient, world: World, clock: ManualClock) -> httpx.AsyncClient:
    response = await log_in(client, world, clock, "off1")
    assert response.status_code == 303, response.text
    return client


async def test_the_login_page_is_in_chinese_by_default_and_in_english_by_the_switch(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/console/login")
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in page.text and "登录" in page.text
    assert '<label for="username">' in page.text and 'id="username"' in page.text
    every_label_used(page.text, "zh-CN")
    english = await client.get("/console/login", params={"lang": "en"})
    assert '<html lang="en">' in english.text and "Log in" in english.text
    # The choice is kept (a cookie), so the next page comes in English without asking.
    assert "Log in" in (await client.get("/console/login")).text


async def test_pages_send_a_content_security_policy_without_inline_script(client: httpx.AsyncClient) -> None:
    page = await client.get("/console/login")
    policy = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert CSP_NO_INLINE.search(policy)
    # No inline script, no eval, no inline style sheet; only style attributes (the map's).
    assert "unsafe" not in directives["script-src"] and "unsafe" not in directives["style-src"]
    assert "unsafe-eval" not in policy
    assert [name for name, value in directives.items() if "unsafe-inline" in value] == ["style-src-attr"]
    assert "frame-ancestors 'none'" in policy
    assert "<script>" not in page.text and " on" + "click=" not in page.text
    script = await client.get("/console/static/vendor/htmx-2.0.11.min.js")
    assert script.status_code == 200 and "htmx" in script.text


async def test_login_with_password_and_totp_sets_an_httponly_secure_samesite_cookie(
    client: httpx.AsyncClient, world: World, clock: ManualClock
) -> None:
    without_code = await client.post(
        "/console/login", data={"username": world.accounts["off1"].username, "password": PASSWORD}
    )
    assert without_code.status_code == 401 and "casemgr_console" not in without_code.headers.get(
        "set-cookie", ""
    )
    wrong = await client.post(
        "/console/login", data={"username": world.accounts["off1"].username, "password": "wrong-password-1"}
    )
    assert wrong.status_code == 401
    response = await log_in(client, world, clock, "off1")
    assert response.status_code == 303 and response.headers["location"] == "/console/cases"
    cookie = response.headers["set-cookie"].lower()
    assert "casemgr_console=" in cookie
    assert all(flag in cookie for flag in ("httponly", "secure", "samesite=strict", "path=/console"))


async def test_a_login_posted_from_another_site_is_refused(
    client: httpx.AsyncClient, world: World, clock: ManualClock
) -> None:
    response = await client.post(
        "/console/login",
        data={"username": world.accounts["off1"].username, "password": PASSWORD, "code": totp_code(clock)},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403 and "set-cookie" not in response.headers


async def test_pages_without_a_session_send_the_officer_to_the_login(client: httpx.AsyncClient) -> None:
    for path in ("/console/cases", "/console/cases/1"):
        response = await client.get(path)
        assert response.status_code in (302, 303) and response.headers["location"] == "/console/login"


async def test_the_caseload_lists_the_officers_cases_and_finds_a_person_by_pinyin_initials(
    officer: httpx.AsyncClient, world: World, owner: Any
) -> None:
    # A case of a person with a Chinese name in the officer's office.
    person = await owner.fetchval(
        "INSERT INTO persons (full_name, name_pinyin, name_initials, sex, birth_date, org_unit_id) "
        "VALUES ('张三丰', 'zhangsanfeng', 'zsf', 'male', '1980-05-05', $1) RETURNING id",
        world.units["o1"].id,
    )
    await owner.execute(
        "INSERT INTO cases (person_id, program, status, org_unit_id, officer_id) "
        "VALUES ($1, 'drug_rehab', 'active', $2, $3)",
        person,
        world.units["o1"].id,
        world.accounts["off1"].id,
    )
    caseload = await officer.get("/console/cases")
    assert caseload.status_code == 200
    assert "张三丰" in caseload.text and "Person cc_o1" in caseload.text
    assert "Person cc_o3" not in caseload.text  # another district's case
    found = await officer.get("/console/cases", params={"q": "zs"})
    assert "张三丰" in found.text and "Person cc_o1" not in found.text
    every_label_used(found.text, "zh-CN")


async def test_a_search_finds_a_person_beyond_the_first_page_of_a_long_caseload(
    officer: httpx.AsyncClient, world: World, owner: Any
) -> None:
    unit, off1 = world.units["o1"].id, world.accounts["off1"].id
    await owner.execute(
        "WITH p AS (INSERT INTO persons (full_name, sex, birth_date, org_unit_id) "
        "SELECT 'Filler ' || n, 'female', '1990-01-01', $1 FROM generate_series(1, 210) n RETURNING id) "
        "INSERT INTO cases (person_id, program, status, org_unit_id, officer_id) "
        "SELECT id, 'drug_rehab', 'active', $1, $2 FROM p",
        unit,
        off1,
    )
    last = await owner.fetchval(
        "INSERT INTO persons (full_name, name_pinyin, name_initials, sex, birth_date, org_unit_id) "
        "VALUES ('李四', 'lisi', 'ls', 'male', '1980-05-05', $1) RETURNING id",
        unit,
    )
    await owner.execute(
        "INSERT INTO cases (person_id, program, status, org_unit_id, officer_id) "
        "VALUES ($1, 'drug_rehab', 'active', $2, $3)",
        last,
        unit,
        off1,
    )
    first = await officer.get("/console/cases")
    assert "李四" not in first.text and 'rel="next"' in first.text  # past the first 200
    next_page = re.search(r'href="(/console/cases\?[^"]+)" rel="next"', first.text)
    assert next_page is not None
    assert "李四" in (await officer.get(next_page[1].replace("&amp;", "&"))).text
    found = await officer.get("/console/cases", params={"q": "ls"})
    assert "李四" in found.text and "Filler" not in found.text


async def test_a_case_file_opens_after_a_purpose_is_stated_and_escapes_what_it_shows(
    officer: httpx.AsyncClient, world: World, owner: Any
) -> None:
    case_id = world.cases["cc_o1"]
    await owner.execute(
        "UPDATE persons SET full_name = '<script>alert(1)</script>' WHERE id = $1", world.persons["cc_o1"]
    )
    ask = await officer.get(f"/console/cases/{case_id}")
    assert ask.status_code == 200 and 'name="purpose"' in ask.text and "查阅事由" in ask.text
    opened = await officer.get(f"/console/cases/{case_id}", params={"purpose": "case.purpose.review"})
    assert opened.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in opened.text and "<script>alert" not in opened.text
    # The contacts, notes and documents of the file, each read as the API reads it (and audited).
    assert "走访与报到" in opened.text and "文书材料" in opened.text and "order.pdf" in opened.text
    every_label_used(opened.text, "zh-CN")
    audited = await owner.fetchval(
        "SELECT purpose FROM audit_log WHERE action = 'case.read' AND object_id = $1 "
        "ORDER BY id DESC LIMIT 1",
        str(case_id),
    )
    assert audited == "定期评估"
    # The language switch keeps the stated purpose: the file reopens in English, not the question.
    assert "purpose=case.purpose.review" in re.search(r'href="([^"]*lang=en[^"]*)"', opened.text)[1]
    elsewhere = await officer.get(
        f"/console/cases/{world.cases['cc_o3']}", params={"purpose": "case.purpose.review"}
    )
    assert elsewhere.status_code in (403, 404) and "Person cc_o3" not in elsewhere.text


async def test_logout_needs_the_csrf_token_of_the_session(officer: httpx.AsyncClient) -> None:
    forged = await officer.post("/console/logout", data={"csrf": "0" * 32})
    assert forged.status_code == 403
    assert (await officer.get("/console/cases")).status_code == 200  # still logged in
    page = (await officer.get("/console/cases")).text
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', page)
    assert token is not None
    out = await officer.post("/console/logout", data={"csrf": token[1]})
    assert out.status_code == 303
    assert (await officer.get("/console/cases")).status_code in (302, 303)


async def test_the_alert_inbox_shows_the_callers_alerts_and_takes_acknowledgement_and_resolution(
    officer: httpx.AsyncClient, world: World, owner: Any
) -> None:
    inbox = await officer.get("/console/alerts")
    assert inbox.status_code == 200
    mine, other = world.alerts["cc_o1"], world.alerts["cc_o3"]
    assert f'id="alert-{mine}"' in inbox.text and f'id="alert-{other}"' not in inbox.text
    assert "腕带被剪断" in inbox.text and 'data-live="/console/alerts/stream"' in inbox.text
    every_label_used(inbox.text, "zh-CN")
    token = csrf_of(inbox.text)
    forged = await officer.post(f"/console/alerts/{mine}/acknowledge", data={"csrf": "0" * 32})
    assert forged.status_code == 403
    done = await officer.post(f"/console/alerts/{mine}/acknowledge", data={"csrf": token})
    assert done.status_code == 303
    assert await owner.fetchval("SELECT status::text FROM alerts WHERE id = $1", mine) == "acknowledged"
    too_short = await officer.post(
        f"/console/alerts/{mine}/resolve", data={"csrf": token, "outcome": "false_alarm", "note": ""}
    )
    assert too_short.status_code == 422
    resolved = await officer.post(
        f"/console/alerts/{mine}/resolve",
        data={"csrf": token, "outcome": "device_fault", "note": "strap replaced on the visit"},
    )
    assert resolved.status_code == 303
    row = await owner.fetchrow("SELECT status::text, outcome::text FROM alerts WHERE id = $1", mine)
    assert (row["status"], row["outcome"]) == ("resolved", "device_fault")
    elsewhere = await officer.post(f"/console/alerts/{other}/acknowledge", data={"csrf": token})
    assert elsewhere.status_code in (403, 404)
    assert await owner.fetchval("SELECT status::text FROM alerts WHERE id = $1", other) == "new"


async def test_the_live_stream_needs_the_console_session(client: httpx.AsyncClient) -> None:
    assert (await client.get("/console/alerts/stream")).status_code == 401


async def test_the_dashboard_shows_the_callers_units_in_figures(
    officer: httpx.AsyncClient, world: World
) -> None:
    page = await officer.get("/console/dashboard")
    assert page.status_code == 200
    assert "统计概览" in page.text and "按期接收率" in page.text
    every_label_used(page.text, "zh-CN")


async def test_the_handover_inbox_lists_what_waits_for_the_callers_units_and_nothing_else(
    officer: httpx.AsyncClient, world: World, owner: Any
) -> None:
    page = await officer.get("/console/handovers")
    assert page.status_code == 200 and "交接收件箱" in page.text
    ids = {int(i) for i in re.findall(r"<td>(\d+)</td>\s*<td>", page.text)}
    assert world.handovers["o1"] in ids and world.handovers["o3"] not in ids
    every_label_used(page.text, "zh-CN")


async def test_pages_of_routes_a_role_may_not_use_are_refused(
    client: httpx.AsyncClient, world: World, clock: ManualClock
) -> None:
    assert (await log_in(client, world, clock, "auditor")).status_code == 303
    for path in ("/console/handovers", "/console/dashboard", "/console/alerts", "/console/cases"):
        response = await client.get(path)
        assert response.status_code == 403, path
    stream = await client.get("/console/alerts/stream")
    assert stream.status_code == 403


async def test_the_map_data_hold_the_orders_zones_and_the_recent_track_read_with_a_purpose(
    officer: httpx.AsyncClient, world: World, owner: Any, clock: ManualClock
) -> None:
    from datetime import timedelta

    case_id, order_id = world.cases["cc_o1"], world.orders["cc_o1"]
    now = clock.now()
    await owner.execute("SELECT ensure_ping_partition($1)", now.date())
    await owner.execute("SELECT ensure_ping_partition($1)", (now - timedelta(hours=2)).date())
    for minutes in (90, 60, 30):
        await owner.execute(
            "INSERT INTO pings (device_id, seq, order_id, case_id, fixed_at, received_at, longitude, "
            "latitude, accuracy_m, strap_state, case_state) "
            "VALUES ($1, $2, $3, $4, $5, $5, 121.47, 31.23, 8, 'intact', 'closed')",
            world.devices["cc_o1"],
            minutes,
            order_id,
            case_id,
            now - timedelta(minutes=minutes),
        )
    page = await officer.get(f"/console/cases/{case_id}/map", params={"purpose": "case.purpose.review"})
    assert page.status_code == 200 and 'id="map"' in page.text and "leaflet-1.9.4.js" in page.text
    every_label_used(page.text, "zh-CN")
    data = await officer.get(f"/console/cases/{case_id}/map.json", params={"purpose": "case.purpose.review"})
    assert data.status_code == 200, data.text
    body = data.json()
    assert body["order_id"] == order_id
    assert [z["kind"] for z in body["zones"]] == ["exclusion"]
    assert [round(fix[1], 2) for fix in body["track"]] == [121.47, 121.47, 121.47]  # oldest first
    assert (await officer.get(f"/console/cases/{case_id}/map.json")).status_code == 428
    elsewhere = await officer.get(
        f"/console/cases/{world.cases['cc_o3']}/map.json", params={"purpose": "case.purpose.review"}
    )
    assert elsewhere.status_code in (403, 404)
    audited = await owner.fetchval(
        "SELECT purpose FROM audit_log WHERE action = 'monitoring.map_read' AND object_id = $1 "
        "ORDER BY id DESC LIMIT 1",
        str(case_id),
    )
    assert audited == "定期评估"


async def test_a_zone_drawn_on_the_map_is_added_to_the_order_in_force(
    officer: httpx.AsyncClient, world: World, owner: Any
) -> None:
    case_id, order_id = world.cases["cc_o1"], world.orders["cc_o1"]
    page = await officer.get(f"/console/cases/{case_id}/map", params={"purpose": "case.purpose.review"})
    assert 'id="zone-form"' in page.text and '<label for="zone-centre">' in page.text
    token = csrf_of(page.text)
    before = await owner.fetchval("SELECT count(*) FROM zones WHERE order_id = $1", order_id)
    circle = {
        "csrf": token,
        "purpose": "case.purpose.review",
        "kind": "exclusion",
        "label": "Bar street",
        "shape": "circle",
        "centre": "121.4800,31.2400",
        "radius_m": "150",
    }
    added = await officer.post(f"/console/cases/{case_id}/zones", data=circle)
    assert added.status_code == 303, added.text
    assert added.headers["location"].startswith(f"/console/cases/{case_id}/map")
    polygon = {
        **circle,
        "label": "Park",
        "kind": "inclusion",
        "shape": "polygon",
        "points": "121.47,31.23;121.48,31.23;121.48,31.24;121.47,31.24",
    }
    assert (await officer.post(f"/console/cases/{case_id}/zones", data=polygon)).status_code == 303
    crossed = {**polygon, "points": "121.47,31.23;121.48,31.24;121.48,31.23;121.47,31.24"}  # a bow tie
    assert (await officer.post(f"/console/cases/{case_id}/zones", data=crossed)).status_code == 422
    assert (
        await officer.post(f"/console/cases/{case_id}/zones", data={**circle, "centre": ""})
    ).status_code == 422
    assert (
        await officer.post(f"/console/cases/{case_id}/zones", data={**circle, "csrf": "0" * 32})
    ).status_code == 403
    rows = await owner.fetch("SELECT kind::text, label FROM zones WHERE order_id = $1 ORDER BY id", order_id)
    assert len(rows) == before + 2
    assert [(r["kind"], r["label"]) for r in rows[-2:]] == [
        ("exclusion", "Bar street"),
        ("inclusion", "Park"),
    ]
    elsewhere = await officer.post(f"/console/cases/{world.cases['cc_o3']}/zones", data=circle)
    assert elsewhere.status_code in (403, 404)


async def test_a_handover_is_accepted_or_sent_back_from_the_inbox(
    officer: httpx.AsyncClient, world: World, owner: Any
) -> None:
    inbox = await officer.get("/console/handovers")
    token = csrf_of(inbox.text)
    mine = world.handovers["o1"]
    assert f'action="/console/handovers/{mine}/accept"' in inbox.text
    no_reason = await officer.post(f"/console/handovers/{mine}/reject", data={"csrf": token, "note": ""})
    assert no_reason.status_code == 422, no_reason.text[:3000]
    accepted = await officer.post(f"/console/handovers/{mine}/accept", data={"csrf": token})
    assert accepted.status_code == 303, accepted.text
    assert await owner.fetchval("SELECT status::text FROM handovers WHERE id = $1", mine) == "accepted"
    again = await officer.post(f"/console/handovers/{mine}/accept", data={"csrf": token})
    assert again.status_code in (403, 409)  # decided already
    other = world.handovers["o3"]
    elsewhere = await officer.post(f"/console/handovers/{other}/accept", data={"csrf": token})
    assert elsewhere.status_code in (403, 404)
    assert await owner.fetchval("SELECT status::text FROM handovers WHERE id = $1", other) == "pending"


async def test_a_contact_is_recorded_from_the_case_file_in_the_bureaus_time(
    officer: httpx.AsyncClient, world: World, owner: Any
) -> None:
    case_id = world.cases["cc_o1"]
    opened = await officer.get(f"/console/cases/{case_id}", params={"purpose": "case.purpose.home_visit"})
    assert 'action="/console/cases/' in opened.text and '<label for="contact-at">' in opened.text
    token = csrf_of(opened.text)
    form = {
        "csrf": token,
        "purpose": "case.purpose.home_visit",
        "kind": "home_visit",
        "outcome": "complied",
        "occurred_at": "2026-01-05T09:30",  # Shanghai time, as typed
        "note": "at home, job search going on",
    }
    recorded = await officer.post(f"/console/cases/{case_id}/contacts", data=form)
    assert recorded.status_code == 303, recorded.text
    assert "purpose=case.purpose.home_visit" in recorded.headers["location"]
    row = await owner.fetchrow(
        "SELECT kind::text, outcome::text, occurred_at, note FROM case_contacts WHERE case_id = $1 "
        "ORDER BY id DESC LIMIT 1",
        case_id,
    )
    assert (row["kind"], row["outcome"], row["note"]) == (
        "home_visit",
        "complied",
        "at home, job search going on",
    )
    assert row["occurred_at"].isoformat().startswith("2026-01-05T01:30")  # 09:30 in Shanghai is 01:30 UTC
    shown = await officer.get(f"/console/cases/{case_id}", params={"purpose": "case.purpose.home_visit"})
    assert "2026-01-05" in shown.text and "家访" in shown.text
    future = await officer.post(
        f"/console/cases/{case_id}/contacts", data={**form, "occurred_at": "2099-01-01T00:00"}
    )
    assert future.status_code == 422
    garbage = await officer.post(f"/console/cases/{case_id}/contacts", data={**form, "kind": "telepathy"})
    assert garbage.status_code == 422
