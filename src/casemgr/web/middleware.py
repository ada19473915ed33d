"""ASGI middleware: a request id for every request, and one log line per request."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from casemgr.web.access import set_request_id

log = structlog.get_logger("casemgr.request")

_CLIENT_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Take the caller's X-Request-ID if it looks like one, else make one; echo it back.

    The id is bound to structlog's context for the lifetime of the request, so every line
    logged while serving it carries it. The access line has the route template, status and
    duration, never the query string or the body.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = given.decode() if given and _CLIENT_REQUEST_ID.match(given) else uuid.uuid4().hex
        set_request_id(scope, request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await app(scope, receive, send_with_id)
            finally:
                log.info(
                    "request_finished",
                    method=scope["method"],
                    route=scope.get("path_template") or "unmatched",
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )

    return middleware
