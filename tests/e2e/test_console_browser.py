"""The console in a real browser (Debian's Chromium, headless, driven by Playwright): an officer
logs in, finds a case by the pinyin initials of the person's name, opens it, watches a live
alert appear after a device cuts its strap, and acknowledges it. Screenshots go to
test-artifacts/console/ (the README's come from there)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from playwright.async_api import Page, async_playwright, expect

from casemgr.monitoring.demo import DemoDevice
from tests.e2e.demo import demo_city
from tests.e2e.test_process import fresh_database as fresh_database  # a fixture, used by name

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OFFICER = "officer.riverside"


@pytest.fixture
def system(fresh_database: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    # Plain HTTP on this machine: a browser refuses a Secure cookie from an http:// page. Each
    # test's tracking keys in a namespace of its own: the devices of a city seeded afresh start
    # again at version 1, which the tracking core would not take over an earlier city's.
    namespace = f"browser{os.getpid()}x{secrets.token_hex(4)}"
    with demo_city(
        fresh_database, tmp_path, namespace, monitored=30, CASEMGR_CONSOLE_COOKIE_SECURE="false"
    ) as city:
        yield {
            "web": city.web,
            "tracking": city.tracking,
            "devices": city.devices,
            "database": fresh_database,
        }


async def monitored_case_of_officer(
    database: str, devices: list[DemoDevice]
) -> tuple[int, str, str, DemoDevice]:
    """A case of the officer with a device on it: (case id, name, pinyin initials, device)."""
    conn = await asyncpg.connect(database)
    try:
        for device in devices:
            row = await conn.fetchrow(
                "SELECT c.id, p.full_name, p.name_initials FROM monitoring_orders o "
                "JOIN cases c ON c.id = o.case_id JOIN persons p ON p.id = c.person_id "
                "JOIN accounts a ON a.id = c.officer_id WHERE o.id = $1 AND a.username = $2",
                device.order_id,
                OFFICER,
            )
            if row is not None:
                return row["id"], row["full_name"], row["name_initials"], device
    finally:
        await conn.close()
    raise AssertionError(f"no monitored case of {OFFICER} in the demo city")


async def cut_strap(tracking: str, device: DemoDevice) -> None:
    ping = {
        "device_id": device.device_id,
        "seq": 1,
        "fix_time": datetime.now(UTC).isoformat(),
        "longitude": device.home[0],
        "latitude": device.home[1],
        "accuracy_m": 8.0,
        "strap_state": "cut",
    }
    async with httpx.AsyncClient(base_url=tracking) as client:
        # The seeded devices reach the tracking core through the web service's outbox, within
        # two of its rounds (5 s each) of the start; until then the core does not know them.
        for _ in range(60):
            response = await client.post(
                "/v1/pings",
                content=msgspec.json.encode(ping),
                headers={
                    "X-Device-Id": device.device_id,
                    "Authorization": f"Bearer {device.secret}",
                    "Content-Type": "application/json",
                },
            )
            if response.status_code != 401:
                break
            await asyncio.sleep(0.5)
    assert response.status_code == 202, response.text


async def shot(page: Page, name: str, *, whole: bool = False) -> None:
    """What the screen shows (1280x800 unless the test says), or the `whole` page."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=whole)


async def test_an_officer_finds_a_case_by_pinyin_initials_and_acknowledges_a_live_alert(
    system: dict[str, Any],
) -> None:
    case_id, name, initials, device = await monitored_case_of_officer(system["database"], system["devices"])
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        try:
            await page.goto(f"{system['web']}/console/login")
            await expect(page.get_by_role("heading", name="登录")).to_be_visible()
            await page.get_by_label("用户名").fill(OFFICER)
            await page.get_by_label("密码").fill("demo-password-2026")
            await page.keyboard.press("Enter")  # the form works from the keyboard
            await page.wait_for_url("**/console/cases")
            await page.wait_for_url("**/console/cases")

            # Readable on a tablet: nothing wider than the screen, at 768 x 1024.
            await page.set_viewport_size({"width": 768, "height": 1024})
            assert await page.evaluate("document.documentElement.scrollWidth") <= 768
            await shot(page, "caseload-tablet")
            await page.set_viewport_size({"width": 1280, "height": 800})

            await page.get_by_label("按姓名、拼音首字母或身份证号查找").fill(initials)
            await page.keyboard.press("Enter")
            row = page.locator("tr", has_text=name).first
            await expect(row).to_be_visible()
            await page.locator(
                f'a[href="/console/cases/{case_id}"]'
            ).click()  # the monitored case of the person
            await page.get_by_role("button", name="打开档案").click()
            await expect(page.get_by_role("heading", level=1)).to_contain_text(name)
            await expect(page.locator("#monitoring")).to_contain_text("生效中")  # the order in force
            await shot(page, "case-file", whole=True)

            await page.goto(f"{system['web']}/console/alerts")
            await expect(page.get_by_role("heading", name="告警收件箱")).to_be_visible()
            await page.wait_for_timeout(500)  # the event stream is open
            await cut_strap(system["tracking"], device)
            alert = page.locator(f'tr[data-kind="strap_tamper"]:has(a[href="/console/cases/{case_id}"])')
            await expect(alert).to_be_visible(timeout=20_000)  # no reload: the stream brought it
            await shot(page, "alert-inbox")
            await alert.get_by_role("button", name="确认收到").click()
            acknowledged = page.locator(
                f'tr[data-kind="strap_tamper"][data-status="acknowledged"]:has(a[href="/console/cases/{case_id}"])'
            )
            await expect(acknowledged).to_be_visible()

            # The subject's map: the zones and the track drawn with no tile server at all.
            await page.goto(f"{system['web']}/console/cases/{case_id}")
            await page.get_by_role("button", name="打开档案").click()
            await page.get_by_role("link", name="查看地图").click()
            await expect(page.locator("#map[data-drawn]")).to_be_attached(timeout=10_000)
            drawn = int(await page.locator("#map").get_attribute("data-drawn") or 0)
            assert drawn >= 3  # the home, the place to keep away from, the track and its last fix
            await expect(page.locator("path.zone-exclusion")).to_have_count(1)
            await shot(page, "map")
            # Drawing a zone: a click on the map sets a circle's centre, then the form is saved.
            await page.locator("#map").click(position={"x": 200, "y": 150})
            await expect(page.locator("#zone-centre")).not_to_have_value("")
            await page.get_by_label("名称").fill("网吧")
            await page.get_by_role("button", name="保存区域").click()
            await expect(page.locator("#map[data-drawn]")).to_be_attached(timeout=10_000)
            await expect(page.locator("path.zone-exclusion")).to_have_count(2)

            await page.goto(f"{system['web']}/console/alerts")
            await page.get_by_role("link", name="English").click()
            await expect(page.get_by_role("heading", name="Alert inbox")).to_be_visible()
        finally:
            await browser.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors


async def press_tab_until(page: Page, selector: str, limit: int = 60) -> None:
    """Tab through the page as a keyboard user does, until the element is focused."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate(
            "(s) => document.activeElement && document.activeElement.matches(s)", selector
        ):
            return
    raise AssertionError(f"{selector} is not reachable with the Tab key")


async def test_an_officer_does_the_whole_round_from_the_keyboard_on_a_tablet(system: dict[str, Any]) -> None:
    """No mouse: log in, skip to the content, search, open the file with a purpose, go to the alert
    inbox and acknowledge; the focused element always shows a ring, and no page is wider than a
    tablet held upright (768 px)."""
    case_id, name, initials, device = await monitored_case_of_officer(system["database"], system["devices"])
    await cut_strap(system["tracking"], device)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 768, "height": 1024}, locale="zh-CN")
        try:

            async def fits() -> None:
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 768, f"{page.url} is {width} px wide"

            async def ring() -> None:
                outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline not in ("", "none"), f"no focus ring on {page.url}"

            await page.goto(f"{system['web']}/console/login")
            await press_tab_until(page, "#username")
            await page.keyboard.type(OFFICER)
            await page.keyboard.press("Tab")
            await page.keyboard.type("demo-password-2026")
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/console/cases")
            await fits()

            await page.keyboard.press("Tab")  # the first stop is the skip link
            assert await page.evaluate("document.activeElement.className") == "skip"
            await page.keyboard.press("Enter")
            await press_tab_until(page, "#q")
            await ring()
            await page.keyboard.type(initials)
            await page.keyboard.press("Enter")
            await expect(page.locator("tr", has_text=name).first).to_be_visible()  # swapped in by htmx
            await press_tab_until(page, f'a[href="/console/cases/{case_id}"]')
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"**/console/cases/{case_id}")
            await press_tab_until(page, "main button[type=submit]")
            await page.keyboard.press("Enter")
            await page.wait_for_url("**purpose=*")
            await expect(page.get_by_role("heading", level=1)).to_contain_text(name)
            await fits()
            await shot(page, "case-file-tablet")

            await press_tab_until(page, f'a[href="/console/alerts?case_id={case_id}"]')
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"**/console/alerts?case_id={case_id}")
            await fits()
            await expect(page.locator('tr[data-kind="strap_tamper"]')).to_be_visible(timeout=20_000)
            await shot(page, "alert-inbox-tablet")
            await press_tab_until(page, 'tr[data-kind="strap_tamper"] button[type=submit]')
            await ring()
            await page.keyboard.press("Enter")
            await expect(
                page.locator('tr[data-kind="strap_tamper"][data-status="acknowledged"]')
            ).to_be_visible()

            await page.goto(f"{system['web']}/console/cases/{case_id}/map?purpose=case.purpose.review")
            await expect(page.locator("#map[data-drawn]")).to_be_attached(timeout=10_000)
            await fits()
            # The zone editor takes typed coordinates: a keyboard user draws without the map.
            await press_tab_until(page, "#zone-label")
            await page.keyboard.type("网吧")
            await press_tab_until(page, "#zone-centre")
            await page.keyboard.type(f"{device.home[0] + 0.01:.5f},{device.home[1]:.5f}")
            await press_tab_until(page, "#zone-form button[type=submit]")
            await page.keyboard.press("Enter")
            await expect(page.locator("li", has_text="网吧")).to_be_visible()
        finally:
            await browser.close()
