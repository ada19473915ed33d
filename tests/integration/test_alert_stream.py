"""The live alert stream (Server-Sent Events): in scope, in order, resumable without loss or
duplication, and ending with the session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from casemgr.alerts.push import LiveStream
from casemgr.context import RequestContext
from casemgr.resources import Resources
from tests.conftest import World


@pytest.fixture
async def live(resources: Resources) -> AsyncIterator[Resources]:
    yield resources
    await resources.alert_feed.close()


class OpenStream:
    """A LiveStream run as the server runs it: its frames arrive through `send` (split into
    events here), the client's going away through `receive`."""

    def __init__(self, stream: LiveStream) -> None:
        self._frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._gone = asyncio.Event()
        self.task = asyncio.create_task(stream({"type": "http"}, self._receive, self._send))

    async def _receive(self) -> dict[str, str]:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        for frame in message.get("body", b"").split(b"\r\n\r\n"):
            if frame:
                self._frames.put_nowait(frame + b"\r\n\r\n")
        if not message.get("more_body"):
            self._frames.put_nowait(None)

    def __aiter__(self) -> OpenStream:
        return self

    async def __anext__(self) -> bytes:
        frame = await self._frames.get()
        if frame is None:
            raise StopAsyncIteration
        return frame

    async def aclose(self) -> None:
        self._gone.set()
        await asyncio.wait_for(self.task, timeout=10)


def open_stream(resources: Resources, ctx: RequestContext, token: str, after: int) -> OpenStream:
    return OpenStream(LiveStream(resources, ctx, token, after))


async def caller(resources: Resources, login_as: Any, name: str) -> tuple[RequestContext, str]:
    token = (await login_as(name))["Authorization"].removeprefix("Bearer ")
    principal = await resources.sessions.resolve(token)
    return RequestContext(request_id=f"stream-{name}", principal=principal), token


async def take(stream: OpenStream, count: int) -> list[tuple[int, dict[str, Any]]]:
    """The next ``count`` alert events (keep-alive comments skipped), or fail after 10 s."""
    got: list[tuple[int, dict[str, Any]]] = []

    async def collect() -> None:
        async for frame in stream:
            fields = dict(line.split(": ", 1) for line in frame.decode().split("\r\n") if ": " in line)
            if fields.get("event") == "alert":
                got.append((int(fields["id"]), json.loads(fields["data"])))
                if len(got) == count:
                    return

    await asyncio.wait_for(collect(), timeout=10)
    return got


async def add_alert(owner: asyncpg.Connection, world: World, case: str, unit: str, tag: str) -> int:
    alert_id: int = await owner.fetchval(
        "INSERT INTO alerts (kind, severity, org_unit_id, case_id, raised_at, details, dedupe_key) "
        "VALUES ('no_signal', 'serious', $1, $2, now(), '{}', $3) RETURNING id",
        world.units[unit].id,
        world.cases[case],
        f"stream:{tag}:{world.cases[case]}",
    )
    return alert_id


async def test_the_stream_sends_new_and_changed_alerts_in_scope_in_order_and_nothing_else(
    live: Resources, world: World, owner: asyncpg.Connection, login_as: Any
) -> None:
    ctx, token = await caller(live, login_as, "off1")
    start = await owner.fetchval("SELECT last_id FROM alert_change_head")
    stream = open_stream(live, ctx, token, start)
    elsewhere = await add_alert(owner, world, "cc_o3", "o3", "d2")  # district d2: not for off1
    mine = await add_alert(owner, world, "cc_o1", "c1", "d1")
    [(new_id, new)] = await take(stream, 1)
    await owner.execute(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = now() "
        "WHERE id = $1",
        mine,
        world.accounts["off1"].id,
    )
    [(acked_id, acked)] = await take(stream, 1)
    assert [(new["id"], new["status"]), (acked["id"], acked["status"])] == [
        (mine, "new"),
        (mine, "acknowledged"),
    ]
    assert start < new_id < acked_id
    assert elsewhere != new["id"]
    await stream.aclose()


async def test_changes_read_together_send_each_alert_once_as_it_is_now(
    live: Resources, world: World, owner: asyncpg.Connection, login_as: Any
) -> None:
    ctx, token = await caller(live, login_as, "off1")
    start = await owner.fetchval("SELECT last_id FROM alert_change_head")
    mine = await add_alert(owner, world, "cc_o1", "c1", "twice")
    await owner.execute(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = now() "
        "WHERE id = $1",
        mine,
        world.accounts["off1"].id,
    )
    last = await owner.fetchval("SELECT last_id FROM alert_change_head")
    stream = open_stream(live, ctx, token, start)  # connects after both changes
    [(change_id, alert)] = await take(stream, 1)
    assert (change_id, alert["id"], alert["status"]) == (last, mine, "acknowledged")
    await stream.aclose()


async def test_a_client_that_reconnects_with_the_last_event_id_misses_nothing_and_gets_nothing_twice(
    live: Resources, world: World, owner: asyncpg.Connection, login_as: Any
) -> None:
    ctx, token = await caller(live, login_as, "sup_d1")
    start = await owner.fetchval("SELECT last_id FROM alert_change_head")
    first = await add_alert(owner, world, "cc_o1", "c1", "one")
    second = await add_alert(owner, world, "drug_o2", "o2", "two")
    stream = open_stream(live, ctx, token, start)
    [(first_id, first_event)] = await take(stream, 1)
    await stream.aclose()  # the connection drops after the first event
    third = await add_alert(owner, world, "cc_o1", "c1", "three")  # while disconnected
    resumed = open_stream(live, ctx, token, first_id)
    events = await take(resumed, 2)
    assert [first_event["id"], *(e["id"] for _, e in events)] == [first, second, third]
    again = open_stream(live, ctx, token, events[-1][0])
    reader = asyncio.create_task(take(again, 1))
    await asyncio.sleep(0.3)
    assert not reader.done()  # nothing after the last event seen
    fourth = await add_alert(owner, world, "cc_o1", "c1", "four")
    [(_, event)] = await reader
    assert event["id"] == fourth
    await resumed.aclose()
    await again.aclose()


async def test_the_stream_ends_when_the_session_does(live: Resources, world: World, login_as: Any) -> None:
    live.alert_feed.keep_alive_s = 1.0  # a keep-alive, and a session check, every second
    ctx, token = await caller(live, login_as, "off1")
    stream = open_stream(live, ctx, token, 10**12)  # beyond every change: only keep-alives
    first = await asyncio.wait_for(anext(stream), timeout=5)
    assert first == b": keep-alive\r\n\r\n"
    assert ctx.principal is not None
    await live.sessions.revoke(ctx.principal)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), timeout=5)


async def test_live_events_follow_the_row_policies_rules_for_health_workers_and_police(
    live: Resources, world: World, owner: asyncpg.Connection, login_as: Any
) -> None:
    start = await owner.fetchval("SELECT last_id FROM alert_change_head")
    health, health_token = await caller(live, login_as, "health_d1")
    police, police_token = await caller(live, login_as, "police_d1")
    health_stream = open_stream(live, health, health_token, start)
    police_stream = open_stream(live, police, police_token, start)
    health_reader = asyncio.create_task(take(health_stream, 1))
    police_reader = asyncio.create_task(take(police_stream, 1))
    await asyncio.sleep(0.2)
    drug = await add_alert(owner, world, "drug_o2", "o2", "rules")  # neither may read drug cases
    smi = await add_alert(owner, world, "smi_o1", "o1", "rules")  # health workers may
    shared = await add_alert(owner, world, "cc_o1", "c1", "rules")  # shared with police
    [(_, seen_by_health)] = await health_reader
    [(_, seen_by_police)] = await police_reader
    assert seen_by_health["id"] == smi
    assert seen_by_police["id"] == shared
    assert drug not in (seen_by_health["id"], seen_by_police["id"])
    await health_stream.aclose()
    await police_stream.aclose()


async def test_a_stream_misses_nothing_when_the_feed_loses_its_listening_connection(
    live: Resources, world: World, owner: asyncpg.Connection, login_as: Any
) -> None:
    ctx, token = await caller(live, login_as, "off1")
    start = await owner.fetchval("SELECT last_id FROM alert_change_head")
    stream = open_stream(live, ctx, token, start)
    reader = asyncio.create_task(take(stream, 2))
    first = await add_alert(owner, world, "cc_o1", "c1", "before-loss")
    await asyncio.sleep(0.3)
    # PostgreSQL drops the feed's LISTEN connection (a restart, a failover, an idle timeout).
    listening = live.alert_feed._connection
    assert listening is not None
    assert await owner.fetchval("SELECT pg_terminate_backend($1)", listening.get_server_pid())
    second = await add_alert(owner, world, "cc_o1", "c1", "after-loss")  # no listener hears it
    events = await reader
    assert [event["id"] for _, event in events] == [first, second]
    await stream.aclose()


async def test_a_client_that_stops_reading_is_cut_off_once_too_many_events_wait_for_it(
    live: Resources, world: World, owner: asyncpg.Connection, login_as: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("casemgr.alerts.push.MAX_BACKLOG", 2)
    monkeypatch.setattr("casemgr.alerts.push.DRAIN_S", 0.2)
    ctx, token = await caller(live, login_as, "off1")
    start = await owner.fetchval("SELECT last_id FROM alert_change_head")
    socket_full = asyncio.Event()  # never set: the client reads nothing
    written: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        body = message.get("body", b"")
        if body:
            written.append(body)
            await socket_full.wait()

    async def receive() -> dict[str, str]:
        await asyncio.Event().wait()  # the client never hangs up either
        return {"type": "http.disconnect"}

    stream = LiveStream(live, ctx, token, start)
    served = asyncio.create_task(stream({"type": "http"}, receive, send))
    await asyncio.sleep(0.2)
    for n in range(4):  # one waits on the socket, two queue, the fourth is one too many
        await add_alert(owner, world, "cc_o1", "c1", f"unread-{n}")
        await asyncio.sleep(0.1)
    await asyncio.wait_for(served, timeout=5)  # the server ends the stream by itself
    assert stream.ended
    assert len(written) == 1  # only what the socket was handed before it filled
