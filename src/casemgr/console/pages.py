"""How a console page is made: the session in its cookie, the CSRF token, the security headers,
the language, and the template around it. The routes are in controllers.py."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from casemgr.auth.principal import Principal, Role
from casemgr.console.i18n import COOKIE as LANG_COOKIE
from casemgr.console.i18n import Translator, pick
from casemgr.context import RequestContext
from casemgr.errors import CasemgrError
from casemgr.web.access import request_id_of, resources_of

SESSION_COOKIE = "casemgr_console"
PURPOSES = ("case.purpose.home_visit", "case.purpose.review", "case.purpose.alert")
# No inline script anywhere, and no inline style sheet: scripts and styles come from
# /console/static only. Style *attributes* are allowed (style-src-attr): the map library
# places its panes and shapes with them; they cannot run code.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
        "img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on its own
    # form posts, and the login could not tell them from a post of another site.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
AnyRequest = Request[Any, Any, Any]


def back_to_case(case_id: int, form: dict[str, str], page: str = "", part: str = "") -> str:
    """Where a case's form returns: the case file (or its `page`, "/map"), read again under the
    purpose the form carried (the review's when it carries none), at its `part`."""
    purpose = form.get("purpose", "")
    stated = purpose if purpose in PURPOSES else PURPOSES[1]
    return f"/console/cases/{case_id}{page}?purpose={stated}" + (f"#{part}" if part else "")


def csrf_token(session_token: str) -> str:
    """Derived from the session's secret token, which a page of another site cannot read: a
    form posted from elsewhere cannot carry it."""
    return hashlib.sha256(b"casemgr-console-csrf:" + session_token.encode()).hexdigest()[:32]


def language_of(request: AnyRequest) -> str:
    return pick(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))


def security_headers(tiles: str = "") -> dict[str, str]:
    """The security headers; a page that shows map tiles lets images come from their server."""
    if not tiles:
        return SECURITY_HEADERS
    parts = urlsplit(tiles)
    origin = f"{parts.scheme}://{parts.netloc}"
    policy = SECURITY_HEADERS["Content-Security-Policy"].replace(
        "img-src 'self' data:", f"img-src 'self' data: {origin}"
    )
    return {**SECURITY_HEADERS, "Content-Security-Policy": policy}


def page(request: AnyRequest, name: str, status: int = 200, **context: Any) -> Template:
    language = language_of(request)
    cookies = []
    if request.query_params.get("lang"):
        cookies.append(
            Cookie(
                key=LANG_COOKIE,
                value=language,
                path="/console",
                samesite="strict",
                secure=resources_of(request).settings.console_cookie_secure,
            )
        )
    return Template(
        template_name=name,
        context={
            "t": Translator(language),
            "local": local_time(resources_of(request).settings.console_time_zone),
            "language": language,
            # The other language, on the same page with the same query (a stated purpose stays).
            "switch_url": request.url.path
            + "?"
            + urlencode(
                {
                    **{k: v for k, v in request.query_params.items() if k != "lang"},
                    "lang": "en" if language == "zh-CN" else "zh-CN",
                }
            ),
            **context,
        },
        status_code=status,
        headers=security_headers(context.get("tiles", "")),
        cookies=cookies,
    )


def session_cookie(request: AnyRequest, token: str, max_age: int | None) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path="/console",
        httponly=True,
        secure=resources_of(request).settings.console_cookie_secure,
        samesite="strict",
        max_age=max_age,
    )


async def caller_of(request: AnyRequest) -> tuple[Principal, str] | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    principal = await resources_of(request).sessions.resolve(token)
    if principal is None or not principal.fully_authenticated:
        return None
    return principal, token


def refused(request: AnyRequest, token: str) -> Template:
    """The page of a role the route is not for: the API answers the same with a 403."""
    return page(request, "error.html", status=403, message="error.forbidden", csrf=csrf_token(token))


def may(principal: Principal, roles: frozenset[Role]) -> bool:
    return principal.role in roles


def to_login(request: AnyRequest) -> Redirect:
    return Redirect("/console/login", headers=SECURITY_HEADERS)


def same_origin(request: AnyRequest) -> bool:
    """A form post from a page of this site: the browser's Origin names it (login has no session
    yet, so no CSRF token; this is what stops a login forced from another site)."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def local_time(zone_name: str) -> Callable[[datetime], datetime]:
    """Times as the officers read them: in the bureau's time zone, not in UTC."""
    zone = ZoneInfo(zone_name)
    return lambda at: at.astimezone(zone)


@dataclass(frozen=True, slots=True)
class Visitor:
    """An officer on a console page: who, under which session, in which request."""

    principal: Principal
    token: str
    ctx: RequestContext


async def admit(
    request: AnyRequest, roles: frozenset[Role], form: dict[str, str] | None = None
) -> Visitor | Response[Any]:
    """The console's guard, as the API's access guard is the API's: no session sends the officer
    to the login page; a role the page is not for, or a form without this session's CSRF token,
    gets the 403 page. Returns the visitor, or the page to answer with instead."""
    caller = await caller_of(request)
    if caller is None:
        return to_login(request)
    principal, token = caller
    forged = form is not None and not hmac.compare_digest(form.get("csrf", ""), csrf_token(token))
    if not may(principal, roles) or forged:
        return refused(request, token)
    return Visitor(
        principal, token, RequestContext(request_id=request_id_of(request.scope), principal=principal)
    )


def failed(
    request: AnyRequest,
    token: str,
    error: CasemgrError,
    *,
    invalid: str = "error.forbidden",
    refused: str = "error.forbidden",
) -> Template:
    """The page for a refusal of the service: not found, input that breaks a rule (`invalid`),
    or anything else the caller may not do (`refused`), with the service's status."""
    message = {404: "error.not_found", 422: invalid}.get(error.status, refused)
    # What the service says of a rule broken or a state that does not allow the step (409, 422)
    # helps the officer mend it; a refusal's reason stays unsaid, as in the API.
    detail = error.detail if error.status in (409, 422) else None
    return page(
        request, "error.html", status=error.status, message=message, detail=detail, csrf=csrf_token(token)
    )
