"""The device-facing HTTP service: POST /v1/pings, and health probes.

Kept apart from the officer-facing app on purpose: devices authenticate with their own secret,
never with an officer's session, and the hot path carries no middleware it does not need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import structlog
from litestar import Litestar, Request, Response, get, post

from casemgr.config import Settings
from casemgr.crypto import Keyring
from casemgr.redis_client import RedisClient, create_redis
from casemgr.web.problems import EXCEPTION_HANDLERS
from tracking.ingest import Ingest
from tracking.keys import KeySpace
from tracking.scripts import Scripts

log = structlog.get_logger(__name__)
_encode_json = msgspec.json.Encoder().encode


@post("/v1/pings", status_code=202)
async def upload_pings(request: Request[Any, Any, Any]) -> Response[bytes]:
    """One ping, or a batch of up to 1,000, as JSON or MessagePack by Content-Type.
    Authenticated by the device's secret: `Authorization: Bearer <secret>`, or `X-Signature`
    carrying the hex HMAC-SHA256 of the body under the secret; `X-Device-Id` names the device.
    202 once every accepted ping is queued; the reply counts accepted, duplicate and rejected."""
    ingest: Ingest = request.app.state.ingest
    headers = request.headers
    reply = await ingest.upload(
        device_id=headers.get("x-device-id"),
        authorization=headers.get("authorization"),
        signature=headers.get("x-signature"),
        content_type=headers.get("content-type", ""),
        body=await request.body(),
    )
    return Response(_encode_json(reply), status_code=202, media_type="application/json")


@get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready")
async def ready(request: Request[Any, Any, Any]) -> dict[str, str]:
    await request.app.state.redis.ping()  # a failure is a 503 problem naming Redis
    return {"status": "ok"}


def create_app(settings: Settings, *, redis: RedisClient | None = None) -> Litestar:
    """With `redis` given (tests), the app uses it and leaves its life to the caller."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        client = redis or create_redis(settings.redis_url, cluster=settings.redis_cluster)
        app.state.redis = client
        app.state.ingest = Ingest(
            redis=client,
            scripts=Scripts.register(client),
            keyring=Keyring(settings.data_keys),
            keyspace=KeySpace(settings.tracking_shards),
            max_batch=settings.tracking_max_batch,
            future_tolerance_ms=settings.tracking_future_tolerance_seconds * 1000,
            cache_size=settings.tracking_device_cache,
        )
        log.info("tracking_started", shards=settings.tracking_shards)
        try:
            yield
        finally:
            if redis is None:
                await client.aclose()

    return Litestar(
        route_handlers=[upload_pings, live, ready],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        # 1,000 pings of JSON stay well under this.
        request_max_body_size=2 * 1024 * 1024,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
