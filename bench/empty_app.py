"""The peer of the ping ingest benchmark: an empty Litestar POST handler that reads the body
and answers 202, served with the same uvicorn settings as the tracking service."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response, post


@post("/v1/pings", status_code=202)
async def empty(request: Request[Any, Any, Any]) -> Response[bytes]:
    await request.body()
    return Response(
        b'{"accepted":1,"duplicate":0,"rejected":[]}', status_code=202, media_type="application/json"
    )


def build() -> Litestar:
    return Litestar(route_handlers=[empty], openapi_config=None, logging_config=None, debug=False)
