"""Every error leaves as ``application/problem+json`` (RFC 9457), and denials are audited.

Litestar's exception handlers are synchronous, so the audit of a denial happens in an
``after_exception`` hook, which runs (awaited) just before the handler renders the error.
"""

from __future__ import annotations

import re
import traceback
from typing import Any

import asyncpg
import msgspec
import redis.exceptions
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import Scope

from casemgr import audit
from casemgr.context import RequestContext
from casemgr.errors import (
    CasemgrError,
    FieldError,
    Forbidden,
    PurposeRequired,
    ServiceUnavailable,
    TooManyRequests,
    Unauthenticated,
    ValidationFailed,
)
from casemgr.web.access import principal_of, request_id_of, resources_of

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
_DENIALS = (Unauthenticated, Forbidden, PurposeRequired)


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fixed members of every problem; services may add extension members."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str
    errors: list[FieldError] | None = None


def problem(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, object] | None = None,
) -> Response[dict[str, Any]]:
    body = msgspec.to_builtins(
        Problem(
            type=f"urn:casemgr:problem:{code}",
            title=title,
            status=status,
            detail=detail,
            request_id=request_id_of(request.scope),
            errors=errors or None,
        )
    )
    # Extension members never replace the standard ones.
    body.update({k: v for k, v in (extra or {}).items() if k not in body})
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def handle_casemgr_error(request: Request[Any, Any, Any], exc: CasemgrError) -> Response[dict[str, Any]]:
    errors = exc.errors if isinstance(exc, ValidationFailed) else None
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    if isinstance(exc, ServiceUnavailable | TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return problem(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        errors=errors,
        headers=headers,
        extra=exc.extra,
    )


_NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]+)`")


def _field_name(key: str | None, message: str) -> str:
    """The dotted path of the offending field, from Litestar's key and msgspec's message."""
    # Litestar gives the path of the object ("person"); msgspec's message may name the field
    # inside it ("Object contains unknown field `nickname`").
    path = "" if key in (None, "", "data") else str(key)
    if path.startswith("data."):
        path = path.removeprefix("data.")
    named = _NAMED_FIELD.search(message)
    if named:
        return f"{path}.{named[1]}" if path else named[1]
    return path or "body"


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    """Litestar's decoding errors: malformed bodies are 400, fields that break a rule 422."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors: list[FieldError] = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        if message == "'data'":  # Litestar's word for "there was no body to decode"
            message = "a JSON body is required"
        key = item.get("key")
        errors.append(FieldError(field=_field_name(str(key) if key else None, message), message=message))
    detail = str(exc.detail)
    malformed = "malformed" in detail.lower() or any(
        "malformed" in e.message.lower() or "invalid json" in e.message.lower() for e in errors
    )
    if malformed:
        return problem(
            request,
            status=400,
            code="malformed_body",
            title="Malformed body",
            detail="the request body is not valid JSON",
        )
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors) or detail
    return problem(
        request,
        status=422,
        code="validation_failed",
        title="Validation failed",
        detail=summary,
        errors=errors,
    )


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        415: "unsupported_media_type",
        429: "too_many_requests",
    }
    code = codes.get(exc.status_code, "http_error")
    detail = str(exc.detail)
    if exc.status_code == 413:
        detail = "the request body is larger than this service accepts"
    elif exc.status_code == 400:
        code, detail = "malformed_body", f"the request body could not be read: {detail}"
    return problem(
        request,
        status=exc.status_code,
        code=code,
        title=code.replace("_", " ").capitalize(),
        detail=detail,
        headers=exc.headers or None,
    )


def handle_dependency_down(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """PostgreSQL or Redis did not answer: a 503 the client may retry, not a 500."""
    log.warning("dependency_unavailable", error_type=f"{type(exc).__module__}.{type(exc).__qualname__}")
    return problem(
        request,
        status=503,
        code="service_unavailable",
        title="Service unavailable",
        detail="a backing service (database or session store) is not answering; retry shortly",
        headers={"Retry-After": "5"},
    )


def handle_unstorable_value(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """PostgreSQL refused a value the validation let through (SQLSTATE class 22: a NUL character
    in a text, a number out of a column's range): the caller's input, so a 400. PostgreSQL's
    message quotes the value, so only the condition's name is given back and logged."""
    condition = type(exc).__name__.removesuffix("Error")
    log.info("value_refused_by_database", condition=condition)
    return problem(
        request,
        status=400,
        code="unstorable_value",
        title="Value cannot be stored",
        detail=f"a value of the request cannot be stored ({condition}); a NUL character in a text is one",
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # The frames name code, never data; an exception's message may quote the data that
    # caused it (PostgreSQL's "invalid input syntax ... 'value'"), so only its type is logged.
    log.error(
        "unhandled_error",
        error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        frames="".join(traceback.format_tb(exc.__traceback__)),
    )
    return problem(
        request,
        status=500,
        code="internal_error",
        title="Internal error",
        detail="an unexpected error occurred; quote the request id when reporting it",
    )


async def audit_denial(exc: Exception, scope: Scope) -> None:
    """Record every authorization denial (401, 403, 428) in the audit trail."""
    if not isinstance(exc, _DENIALS) or getattr(exc, "already_audited", False):
        return
    handler = scope.get("route_handler")
    action = handler.opt.get("action", "unknown") if handler is not None else "unknown"
    request: Request[Any, Any, Any] = Request(scope)
    ctx = RequestContext(request_id=request_id_of(scope), principal=principal_of(request))
    object_type = getattr(exc, "object_type", None)
    object_id = getattr(exc, "object_id", None)
    try:
        await audit.record_in_own_transaction(
            resources_of(request).pool,
            ctx,
            action,
            outcome="denied",
            object_type=object_type,
            object_id=object_id,
            reason=exc.reason,
        )
    except Exception as e:  # the denial stands; a lost audit row must at least be loud
        log.error("denial_audit_failed", action=action, error_type=type(e).__name__)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    CasemgrError: handle_casemgr_error,
    redis.exceptions.ConnectionError: handle_dependency_down,
    redis.exceptions.TimeoutError: handle_dependency_down,
    asyncpg.PostgresConnectionError: handle_dependency_down,
    asyncpg.CannotConnectNowError: handle_dependency_down,
    asyncpg.exceptions.ConnectionDoesNotExistError: handle_dependency_down,
    ConnectionError: handle_dependency_down,
    TimeoutError: handle_dependency_down,
    asyncpg.exceptions.DataError: handle_unstorable_value,
    ValidationException: handle_validation,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
