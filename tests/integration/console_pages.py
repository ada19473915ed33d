"""What the console's tests share: a browser-like client over https, logging in, the CSRF token
of a page, and the checks every page must pass (labels from the catalogs, labelled fields)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser

import httpx

from casemgr.app import create_app
from casemgr.clock import ManualClock
from casemgr.config import Settings
from casemgr.console.i18n import catalog
from casemgr.resources import Resources
from tests.conftest import PASSWORD, World, totp_code


@asynccontextmanager
async def console_client(settings: Settings, resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    """Over https: the console's cookies are Secure, and a client keeps them for https only."""
    app = create_app(settings, resources=resources)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://casemgr.test"
    ) as c:
        yield c


async def log_in(client: httpx.AsyncClient, world: World, clock: ManualClock, name: str) -> httpx.Response:
    return await client.post(
        "/console/login",
        data={"username": world.accounts[name].username, "password": PASSWORD, "code": totp_code(clock)},
    )


def csrf_of(page: str) -> str:
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', page)
    assert token is not None
    return token[1]


def every_label_used(html: str, language: str) -> None:
    """No template label left as a bare key: each shown text came from the catalog."""
    keys = catalog(language).keys()
    assert not [key for key in keys if f">{key}<" in html]


class _Fields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "label" and found.get("for"):
            self.labelled.add(found["for"] or "")
        elif tag in ("input", "select", "textarea") and found.get("type") not in ("hidden", "submit"):
            self.fields.append(found)


def unlabelled_fields(html: str) -> list[str]:
    """The form fields a screen reader could not name: neither a <label for> nor an aria-label."""
    parser = _Fields()
    parser.feed(html)
    return [
        str(field.get("name") or field.get("id"))
        for field in parser.fields
        if field.get("id") not in parser.labelled and not field.get("aria-label")
    ]
