"""The device-facing HTTP endpoint: authentication, content types, and bad input."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from tracking.app import create_app
from tracking.ingest import Ingest

from casemgr.config import Settings
from tests.tracking.conftest import KEYRING, Device, Rig, now_ms

POSITION = {"longitude": 121.47, "latitude": 31.23, "accuracy_m": 8.0}


@pytest.fixture
async def client(rig: Rig, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, redis=rig.redis)
    # httpx's ASGI transport does not run the lifespan: give the app the rig's ingest, whose
    # keys live in the test's own namespace.
    app.state.redis = rig.redis
    app.state.ingest = Ingest(redis=rig.redis, scripts=rig.scripts, keyring=KEYRING, keyspace=rig.keyspace)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tracking"
    ) as client:
        yield client


def bearer(device: Device) -> dict[str, str]:
    return {"X-Device-Id": device.device_id, "Authorization": f"Bearer {device.secret}"}


async def post_json(client: httpx.AsyncClient, device: Device, body: Any, **headers: str) -> httpx.Response:
    return await client.post(
        "/v1/pings",
        content=msgspec.json.encode(body),
        headers={**bearer(device), "Content-Type": "application/json", **headers},
    )


async def test_a_json_batch_is_accepted_with_202_and_counted(rig: Rig, client: httpx.AsyncClient) -> None:
    device = await rig.device()
    t = now_ms() - 60_000
    response = await post_json(
        client, device, [device.ping(t, **POSITION), device.ping(t + 1000, **POSITION)]
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2, "duplicate": 0, "rejected": []}


async def test_a_single_msgpack_ping_signed_with_hmac_is_accepted(
    rig: Rig, client: httpx.AsyncClient
) -> None:
    device = await rig.device()
    body = msgspec.msgpack.encode(device.ping(now_ms() - 1000, **POSITION))
    signature = hmac.new(device.secret.encode(), body, hashlib.sha256).hexdigest()
    response = await client.post(
        "/v1/pings",
        content=body,
        headers={
            "X-Device-Id": device.device_id,
            "X-Signature": signature,
            "Content-Type": "application/msgpack",
        },
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1


async def test_wrong_or_missing_credentials_are_refused_and_nothing_is_queued(
    rig: Rig, client: httpx.AsyncClient
) -> None:
    device = await rig.device()
    ping = device.ping(now_ms() - 1000, **POSITION)
    body = msgspec.json.encode(ping)
    cases = [
        {"X-Device-Id": device.device_id, "Authorization": "Bearer not-the-secret"},
        {
            "X-Device-Id": device.device_id,
            "X-Signature": hmac.new(b"other", body, hashlib.sha256).hexdigest(),
        },
        {"X-Device-Id": device.device_id},
        {"X-Device-Id": "no-such-device", "Authorization": f"Bearer {device.secret}"},
        {"Authorization": f"Bearer {device.secret}"},
    ]
    reasons = []
    for headers in cases:
        response = await client.post(
            "/v1/pings", content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 401, response.text
        reasons.append(response.json()["detail"])
    assert reasons == [
        "wrong device secret",
        "the body's signature does not match the device's secret",
        "no device credentials: send Authorization: Bearer <secret>, "
        "or X-Signature: <hex HMAC-SHA256 of the body>",
        "unknown device",
        "the X-Device-Id header is missing or malformed",
    ]
    assert await rig.pings_queued() == []


async def test_uploads_past_litestar_and_through_its_route_get_the_same_answers(
    rig: Rig, client: httpx.AsyncClient
) -> None:
    """POST /v1/pings goes straight to the ingest (tracking.app.TrackingApp); "/v1/pings/" goes
    through Litestar's router to the same route. Successes and errors alike must not tell them
    apart: an error leaves the fast path as the route's own, problem+json with its headers."""
    device = await rig.device()
    t = now_ms() - 60_000
    answers = []
    for path in ("/v1/pings", "/v1/pings/"):
        pings = [device.ping(t, **POSITION), device.ping(t + 1000, **POSITION)]
        t += 2000
        ok = await client.post(
            path,
            content=msgspec.json.encode(pings),
            headers={**bearer(device), "Content-Type": "application/json"},
        )
        refused = await client.post(
            path,
            content=msgspec.json.encode(pings[0]),
            headers={"X-Device-Id": device.device_id, "Authorization": "Bearer wrong"},
        )
        invalid = await client.post(
            path,
            content=b'{"device_id": 1}',
            headers={**bearer(device), "Content-Type": "application/json"},
        )
        answers.append(
            [
                (r.status_code, r.headers["content-type"], r.headers.get("www-authenticate"), r.json())
                for r in (ok, refused, invalid)
            ]
        )
    fast, routed = answers
    for answer in (fast, routed):  # request ids differ from request to request
        for _, _, _, body in answer:
            body.pop("request_id", None)
    assert fast == routed
    assert [status for status, *_ in fast] == [202, 401, 422]
    assert fast[0][3] == {"accepted": 2, "duplicate": 0, "rejected": []}
    assert fast[1][1] == "application/problem+json" and fast[1][2] == "Bearer"
    assert fast[2][3]["errors"][0]["field"] == "device_id"
    assert len(await rig.pings_queued()) == 2  # one upload of two pings by each path


async def test_a_good_upload_never_reaches_litestar_and_a_failed_one_does(
    rig: Rig, settings: Settings
) -> None:
    app = create_app(settings, redis=rig.redis)
    app.state.redis = rig.redis
    app.state.ingest = Ingest(redis=rig.redis, scripts=rig.scripts, keyring=KEYRING, keyspace=rig.keyspace)
    litestar = app.litestar
    reached: list[str] = []

    class Counting:
        state = litestar.state

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            reached.append(scope["path"])
            await litestar(scope, receive, send)

    app.litestar = Counting()  # type: ignore[assignment]
    device = await rig.device()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        good = await post_json(client, device, device.ping(now_ms() - 1000, **POSITION))
        assert (good.status_code, reached) == (202, [])
        bad = await post_json(
            client, device, device.ping(now_ms() - 500, **POSITION), Authorization="Bearer x"
        )
        assert (bad.status_code, reached) == (401, ["/v1/pings"])


async def test_other_methods_on_the_ping_route_get_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/pings")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_a_device_with_no_active_order_gets_403(rig: Rig, client: httpx.AsyncClient) -> None:
    device = await rig.device(order_id=None)
    response = await post_json(client, device, device.ping(now_ms() - 1000, **POSITION))
    assert response.status_code == 403
    assert response.json()["detail"] == "the device has no active monitoring order"
    assert await rig.pings_queued() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"latitude": 91.0}, "latitude"),
        ({"longitude": -180.5}, "longitude"),
        ({"accuracy_m": -1.0}, "accuracy_m"),
        ({"battery_percent": 101}, "battery_percent"),
        ({"strap_state": "loose"}, "strap_state"),
        ({"seq": -1}, "seq"),
        ({"fix_time": "2026-01-01T10:00:00"}, "fix_time"),  # no time zone
        ({"colour": "red"}, "colour"),
    ],
)
async def test_a_single_bad_ping_is_a_422_naming_the_field(
    rig: Rig, client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    device = await rig.device()
    response = await post_json(client, device, device.ping(now_ms() - 1000, **POSITION) | change)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await rig.pings_queued() == []


async def test_nan_in_msgpack_is_refused(rig: Rig, client: httpx.AsyncClient) -> None:
    device = await rig.device()
    body = msgspec.msgpack.encode(device.ping(now_ms() - 1000, **POSITION) | {"latitude": math.nan})
    response = await client.post(
        "/v1/pings", content=body, headers={**bearer(device), "Content-Type": "application/msgpack"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "latitude"


async def test_a_batch_with_bad_pings_accepts_the_good_ones_and_lists_the_bad_by_index(
    rig: Rig, client: httpx.AsyncClient
) -> None:
    device = await rig.device()
    t = now_ms() - 60_000
    batch = [
        device.ping(t, **POSITION),
        device.ping(t + 1000, **POSITION) | {"latitude": -95.0},
        device.ping(now_ms() + 3_600_000, **POSITION),  # an hour ahead of the server's clock
        device.ping(t + 3000, longitude=121.0),  # a longitude without its latitude
        device.ping(t + 4000, **POSITION) | {"device_id": "someone-else"},
        device.ping(t + 5000, longitude=121.47, latitude=31.23),  # a position without accuracy
        device.ping(t + 6000, **POSITION),
    ]
    response = await post_json(client, device, batch)
    assert response.status_code == 202, response.text
    reply = response.json()
    assert (reply["accepted"], reply["duplicate"]) == (2, 0)
    assert [(r["index"], r["reason"].split(" - ")[0]) for r in reply["rejected"]] == [
        (1, "Expected `float` >= -90.0"),
        (2, "fix_time is in the future"),
        (3, "latitude and longitude go together: send both or neither"),
        (4, "device_id differs from the authenticated device"),
        (5, "accuracy_m is required with a position"),
    ]
    assert "latitude" in reply["rejected"][0]["reason"]
    queued = await rig.pings_queued()
    assert sorted(fix[0] for _, fixes in queued for fix in fixes) == [1, 7]


async def test_a_batch_of_only_bad_pings_is_a_422_and_a_batch_over_1000_a_413(
    rig: Rig, client: httpx.AsyncClient
) -> None:
    device = await rig.device()
    future = [device.ping(now_ms() + 3_600_000, **POSITION) for _ in range(2)]
    response = await post_json(client, device, future)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["[0]", "[1]"]
    too_many = [device.ping(now_ms() - 100_000 + i, **POSITION) for i in range(1001)]
    response = await post_json(client, device, too_many)
    assert response.status_code == 413
    assert "at most 1000 pings" in response.json()["detail"]
    assert await rig.pings_queued() == []


async def test_unreadable_bodies_and_unknown_media_types_are_refused(
    rig: Rig, client: httpx.AsyncClient
) -> None:
    device = await rig.device()
    response = await client.post(
        "/v1/pings", content=b"[{", headers={**bearer(device), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    response = await client.post(
        "/v1/pings", content=b"x", headers={**bearer(device), "Content-Type": "text/csv"}
    )
    assert response.status_code == 415
    response = await post_json(client, device, [])
    assert response.status_code == 422
