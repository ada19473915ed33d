"""Hypothesis against the ingest endpoint: any body, well-formed or not, gets a 2xx or a 4xx,
never a 5xx; a batch's good pings are taken and its bad ones listed by index; nothing of a
refused ping is queued."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.tracking.conftest import Rig, iso, now_ms
from tests.tracking.test_ingest_http import client as client  # a fixture, used by name

# The same examples on every run (a suite that lands must not depend on luck); raise
# max_examples locally, or drop derandomize, to search further.
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
    database=None,
)

# Values of every kind a broken or hostile device might put in a field.
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
)
FIELDS = [
    "device_id",
    "seq",
    "fix_time",
    "latitude",
    "longitude",
    "accuracy_m",
    "speed_mps",
    "battery_percent",
    "strap_state",
    "case_state",
]


def good_ping(device_id: str, seq: int, t_ms: int) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "seq": seq,
        "fix_time": iso(t_ms),
        "latitude": 31.23,
        "longitude": 121.47,
        "accuracy_m": 8.0,
    }


@st.composite
def pings(draw: st.DrawFn, device_id: str, t0: int) -> tuple[dict[str, Any], bool]:
    """A ping, and whether it is good: a good one, or one with a field spoiled, dropped or added."""
    seq = draw(st.integers(1, 9_000))  # fix times within the order, none in the future
    ping = good_ping(device_id, seq, t0 + seq * 1000)
    spoil = draw(st.sampled_from(["none", "replace", "drop", "add", "nan"]))
    if spoil == "replace":
        name = draw(st.sampled_from(FIELDS))
        ping[name] = draw(ANY_VALUE)
    elif spoil == "drop":
        ping.pop(draw(st.sampled_from(["device_id", "seq", "fix_time"])))
    elif spoil == "add":
        ping[draw(st.text(min_size=1, max_size=10))] = draw(ANY_VALUE)
    elif spoil == "nan":
        ping[draw(st.sampled_from(["latitude", "longitude", "accuracy_m"]))] = math.nan
    return ping, spoil == "none"


@SETTINGS
@given(data=st.data())
async def test_any_batch_gets_an_answer_that_counts_every_ping_and_queues_only_the_good(
    rig: Rig, client: httpx.AsyncClient, data: st.DataObject
) -> None:
    device = await rig.device()
    batch = data.draw(st.lists(pings(device.device_id, now_ms() - 3 * 3_600_000), min_size=1, max_size=12))
    body = [ping for ping, _ in batch]
    response = await client.post(
        "/v1/pings",
        # NaN is not JSON; Python's encoder writes it as the literal NaN, which must be refused.
        content=json.dumps(body).encode(),
        headers={
            "X-Device-Id": device.device_id,
            "Authorization": f"Bearer {device.secret}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code < 500, response.text
    event(f"HTTP {response.status_code}")
    queued = sum(len(fixes) for dev, fixes in await rig.pings_queued() if dev == device.device_id)
    if response.status_code == 202:
        reply = response.json()
        rejected = {r["index"] for r in reply["rejected"]}
        assert reply["accepted"] + reply["duplicate"] + len(rejected) == len(body)
        # Every ping known good is taken (as new or as a repeat), none is listed as bad.
        assert not rejected & {i for i, (_, good) in enumerate(batch) if good}
        assert queued == reply["accepted"]
    else:
        assert response.status_code in (400, 413, 422), response.text
        assert queued == 0


@SETTINGS
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
async def test_any_bytes_as_a_body_get_a_4xx_and_nothing_is_queued(
    rig: Rig, client: httpx.AsyncClient, body: bytes
) -> None:
    device = await rig.device()
    for content_type in ("application/json", "application/msgpack"):
        response = await client.post(
            "/v1/pings",
            content=body,
            headers={
                "X-Device-Id": device.device_id,
                "Authorization": f"Bearer {device.secret}",
                "Content-Type": content_type,
            },
        )
        assert response.status_code in (400, 413, 415, 422), (content_type, body, response.text)
    assert [d for d, _ in await rig.pings_queued() if d == device.device_id] == []


async def test_a_msgpack_string_that_is_not_utf8_is_a_400_not_a_500(
    rig: Rig, client: httpx.AsyncClient
) -> None:
    """Found by the test above: msgspec raises UnicodeDecodeError, not a DecodeError, for it."""
    device = await rig.device()
    for body in (b"\xa3\xff\xfe\xfd", b"\x91\xa3\xff\xfe\xfd", b"\x81\xa3\xff\xfe\xfd\x01"):
        response = await client.post(
            "/v1/pings",
            content=body,
            headers={
                "X-Device-Id": device.device_id,
                "Authorization": f"Bearer {device.secret}",
                "Content-Type": "application/msgpack",
            },
        )
        assert response.status_code in (400, 422), (body, response.text)
