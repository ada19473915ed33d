"""The device-facing HTTP service: POST /v1/pings, and health probes.

Kept apart from the officer-facing app on purpose: devices authenticate with their own secret,
never with an officer's session, and the hot path carries no middleware it does not need.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import msgspec
import structlog
from litestar import Litestar, Request, asgi, get
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, MethodNotAllowedException
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, HTTPScope, Receive, Scope, Send
from redis.exceptions import RedisError

from casemgr.collector import collect_periodically
from casemgr.config import Settings
from casemgr.crypto import Keyring
from casemgr.errors import PayloadTooLarge, ServiceUnavailable
from casemgr.ratelimit import Limit, RateLimiter
from casemgr.redis_client import RedisClient, create_redis
from casemgr.web.problems import EXCEPTION_HANDLERS
from tracking.ingest import Ingest
from tracking.keys import KeySpace
from tracking.script_pipe import ScriptPipe
from tracking.scripts import Scripts

log = structlog.get_logger(__name__)
_encode_json = msgspec.json.Encoder().encode
# 1,000 pings of JSON stay well under this.
MAX_BODY_BYTES = 2 * 1024 * 1024


_JSON = [(b"content-type", b"application/json")]
# ASGI servers give header names in lower case.
_INGEST_HEADERS = frozenset({b"x-device-id", b"authorization", b"x-signature", b"content-type"})


PINGS_PATH = "/v1/pings"
# Where the fast path leaves an upload's error for the route to raise (see TrackingApp).
_FAILURE = "casemgr.ingest_failure"


@asgi(PINGS_PATH, copy_scope=False)
async def upload_pings(scope: Scope, receive: Receive, send: Send) -> None:
    """One ping, or a batch of up to 1,000, as JSON or MessagePack by Content-Type.
    Authenticated by the device's secret: `Authorization: Bearer <secret>`, or `X-Signature`
    carrying the hex HMAC-SHA256 of the body under the secret; `X-Device-Id` names the device.
    202 once every accepted ping is queued; the reply counts accepted, duplicate and rejected.

    A plain ASGI handler: the hot path of the device fleet skips Litestar's request and
    response modelling (it has nothing to model); errors still become problem+json through
    the app's exception handlers. TrackingApp sends most uploads past Litestar altogether, and
    their errors here, to be raised again and rendered the same way."""
    failure = scope.pop(_FAILURE, None)  # type: ignore[misc]
    if failure is not None:
        raise failure
    if scope["method"] != "POST":  # type: ignore[typeddict-item]
        raise MethodNotAllowedException(headers={"Allow": "POST"})
    await _send_accepted(send, await _accept(cast(HTTPScope, scope), receive))


async def _accept(http: HTTPScope, receive: Receive) -> bytes:
    """The upload, ingested; the 202's body."""
    wanted: dict[bytes, str] = {}
    for name, value in http["headers"]:
        if name in _INGEST_HEADERS:
            wanted[name] = value.decode("latin-1")
    ingest: Ingest = http["app"].state.ingest
    reply = await ingest.upload(
        device_id=wanted.get(b"x-device-id"),
        authorization=wanted.get(b"authorization"),
        signature=wanted.get(b"x-signature"),
        content_type=wanted.get(b"content-type", ""),
        body=await _body(receive),
        address=client[0] if (client := http.get("client")) else "",
    )
    return _encode_json(reply)


async def _send_accepted(send: Send, payload: bytes) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 202,
        "headers": [*_JSON, (b"content-length", str(len(payload)).encode())],
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": payload, "more_body": False}
    await send(end)


class TrackingApp:
    """The service's ASGI app: POST /v1/pings straight to the ingest, everything else through
    Litestar. Litestar's router and middleware cost a tracking worker 5 us of its 55 of CPU per
    single-ping upload (an A/B of the two, 1,000 subjects, wrk with 256 connections: 20,584
    against 21,296 uploads/s), and the route needs nothing of them. An upload that fails goes
    to Litestar after all, with its error, which the route raises again: the error leaves as
    problem+json from the app's own exception handlers, as from any other route."""

    __slots__ = ("litestar",)

    def __init__(self, litestar: Litestar) -> None:
        self.litestar = litestar

    @property
    def state(self) -> State:
        return self.litestar.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        http = cast(HTTPScope, scope)
        if http["type"] == ScopeType.HTTP and http["path"] == PINGS_PATH and http["method"] == "POST":
            http["app"] = self.litestar
            try:
                payload = await _accept(http, receive)
            except Exception as failure:
                http[_FAILURE] = failure  # type: ignore[literal-required]
            else:
                await _send_accepted(send, payload)
                return
        await self.litestar(scope, receive, send)


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientException("the device disconnected mid-upload")
        chunk = cast(bytes, message.get("body", b""))
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"an upload is at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _preload(ingest: Ingest, done: asyncio.Event, settings: Settings) -> None:
    """Uploads are served meanwhile (a device not loaded yet costs one more round trip);
    readiness waits, so that a load balancer sends the fleet to warm workers."""
    try:
        if settings.tracking_preload:
            started = time.monotonic()
            loaded = await ingest.preload()
            log.info("tracking_preloaded", devices=loaded, seconds=round(time.monotonic() - started, 1))
    except RedisError as e:
        log.warning("tracking_preload_failed", reason=str(e))
    finally:
        done.set()


@get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready")
async def ready(request: Request[Any, Any, Any]) -> dict[str, str]:
    if not request.app.state.preloaded.is_set():
        raise ServiceUnavailable("loading device configurations")
    await request.app.state.redis.ping()  # a failure is a 503 problem naming Redis
    return {"status": "ok"}


def create_app(settings: Settings, *, redis: RedisClient | None = None) -> TrackingApp:
    """With `redis` given (tests), the app uses it and leaves its life to the caller."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        client = redis or create_redis(settings.redis_url, cluster=settings.redis_cluster)
        app.state.redis = client
        pipe = None if settings.redis_cluster else ScriptPipe(settings.redis_url)
        app.state.ingest = Ingest(
            pipe=pipe,
            redis=client,
            scripts=Scripts.register(client),
            keyring=Keyring(settings.data_keys),
            keyspace=KeySpace(settings.tracking_shards, settings.tracking_namespace),
            max_batch=settings.tracking_max_batch,
            max_backlog=settings.tracking_max_backlog,
            device_uploads_per_minute=settings.tracking_device_uploads_per_minute,
            rate_limiter=RateLimiter(client, namespace=settings.tracking_namespace),
            failed_auth_limit=Limit(
                "failed-device-auth-per-address", settings.tracking_failed_auth_per_address_per_minute
            ),
            future_tolerance_ms=settings.tracking_future_tolerance_seconds * 1000,
            cache_size=settings.tracking_device_cache,
        )
        app.state.preloaded = asyncio.Event()
        preloading = asyncio.create_task(_preload(app.state.ingest, app.state.preloaded, settings))
        # With a million subjects a worker's device cache holds a million entries, and each of
        # CPython's own full collections scans them all: measured under single-ping load, the
        # workers spent 152-175 us of CPU per upload instead of 88-93 with 1,000 subjects (py-spy
        # put the difference at the allocation sites where collections start). Frozen, as in the
        # officers' service: 91-98 us.
        collecting = asyncio.create_task(collect_periodically())
        log.info("tracking_started", shards=settings.tracking_shards)
        try:
            yield
        finally:
            preloading.cancel()
            collecting.cancel()
            if pipe is not None:
                pipe.close()
            if redis is None:
                await client.aclose()

    return TrackingApp(
        Litestar(
            route_handlers=[upload_pings, live, ready],
            lifespan=[lifespan],
            exception_handlers=EXCEPTION_HANDLERS,
            request_max_body_size=MAX_BODY_BYTES,
            openapi_config=None,
            logging_config=None,
            debug=False,
        )
    )
