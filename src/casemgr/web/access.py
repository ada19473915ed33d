"""Route-level authorization, deny by default, and the per-request context.

Every route declares its access in ``opt`` with :func:`access` (or :func:`public`); one
app-wide guard reads that declaration. A route that declares nothing is closed to all,
so forgetting a declaration fails safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler

from casemgr.auth.principal import Principal, Role
from casemgr.context import RequestContext
from casemgr.errors import Forbidden, PurposeRequired, Unauthenticated
from casemgr.resources import Resources

AnyRequest = Request[Any, Any, Any]

# The request context, injected by name into every controller method that takes ``ctx``.
Ctx = NamedDependency[RequestContext]

PURPOSE_HEADER = "x-purpose"
_PURPOSE_MIN, _PURPOSE_MAX = 3, 500
_STATE_PRINCIPAL = "casemgr_principal"
_STATE_REQUEST_ID = "casemgr_request_id"
_ACTION = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")


def access(
    action: str, roles: Iterable[Role], *, purpose: bool = False, mfa_stage: bool = False
) -> dict[str, Any]:
    """The ``opt`` of a route: its audit action, the roles allowed, whether it needs a purpose.

    ``mfa_stage`` routes are reachable by a session that has passed the password but not yet
    the second factor (enrolment and verification of TOTP, logout).
    """
    if not _ACTION.match(action):
        raise ValueError(f"bad audit action name {action!r}")
    return {"action": action, "roles": frozenset(roles), "purpose": purpose, "mfa_stage": mfa_stage}


def public(action: str, *, login: bool = False) -> dict[str, Any]:
    """A route open without a session; ``login`` routes count against the per-address login limit."""
    return {"action": action, "public": True, "login": login}


def _bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def resources_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Resources:
    resources: Resources = connection.app.state.resources
    return resources


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    principal: Principal | None = connection.scope.get("state", {}).get(_STATE_PRINCIPAL)
    return principal


def request_id_of(scope: Any) -> str:
    request_id: str = scope.get("state", {}).get(_STATE_REQUEST_ID, "-")
    return request_id


def set_request_id(scope: Any, request_id: str) -> None:
    scope.setdefault("state", {})[_STATE_REQUEST_ID] = request_id


def _purpose_header(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The X-Purpose header as the officer wrote it: servers hand headers over decoded as
    Latin-1, clients send UTF-8 (a purpose is often written in Chinese)."""
    raw = connection.headers.get(PURPOSE_HEADER, "")
    try:
        return raw.encode("latin-1").decode("utf-8").strip()
    except UnicodeError:
        return raw.strip()


def stated_purpose(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    value = _purpose_header(connection)
    if not value:
        return None
    # Routes that require a purpose check its length; elsewhere it is recorded as given,
    # cut to what the audit row holds.
    return value[:_PURPOSE_MAX]


async def access_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    opt = handler.opt
    resources = resources_of(connection)
    limits = resources.api_limits
    address = connection.client.host if connection.client else "unknown"
    if opt.get("public"):
        if opt.get("login"):
            await resources.rate_limiter.hit(
                (limits.per_address, address), (limits.logins_per_address, address)
            )
        return  # health probes and the schema are not limited
    token = _bearer_token(connection.headers.get("authorization"))
    if token is None:
        await resources.rate_limiter.hit((limits.per_address, address))
        raise Unauthenticated(
            "missing or malformed Authorization header: send 'Authorization: Bearer <token>'",
            reason="missing_token",
        )
    principal = await resources.sessions.resolve(token)
    checks = [(limits.per_address, address)]
    if principal is not None:
        checks.append((limits.per_account, str(principal.account_id)))
    await resources.rate_limiter.hit(*checks)
    if principal is None:
        raise Unauthenticated(
            "the session has ended or never existed; log in again", reason="session_invalid"
        )
    connection.scope.setdefault("state", {})[_STATE_PRINCIPAL] = principal
    roles: frozenset[Role] | None = opt.get("roles")
    if not roles:
        raise Forbidden("this route is open to no role", reason="route_closed")
    if not principal.fully_authenticated and not opt.get("mfa_stage"):
        raise Forbidden(
            "complete the second factor first (POST /auth/totp/enrol or /auth/totp/verify)",
            reason="mfa_incomplete",
        )
    if principal.role not in roles:
        raise Forbidden(f"the role {principal.role} may not do this", reason="role_not_allowed")
    if opt.get("purpose"):
        raw = _purpose_header(connection)
        if not raw:
            raise PurposeRequired(
                "reading this record needs a stated purpose: send an X-Purpose header "
                f"({_PURPOSE_MIN} to {_PURPOSE_MAX} characters) saying why you need it",
                reason="purpose_missing",
            )
        if not _PURPOSE_MIN <= len(raw) <= _PURPOSE_MAX:
            raise PurposeRequired(
                f"the X-Purpose header must have {_PURPOSE_MIN} to {_PURPOSE_MAX} characters",
                reason="purpose_invalid",
            )


def request_context(request: Request[Any, Any, Any]) -> RequestContext:
    """The dependency every controller takes: who calls, under which request id, and why."""
    return RequestContext(
        request_id=request_id_of(request.scope),
        principal=principal_of(request),
        purpose=stated_purpose(request),
    )
