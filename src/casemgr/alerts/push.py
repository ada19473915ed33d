"""One officer's live alert stream (Server-Sent Events), written from the feed itself.

With 10,000 streams in a process, waking a task per stream for every change, and passing each
frame through a streaming response, cost about 13 µs per stream (py-spy, bench/alert_stream.py):
130 ms before the last of them had its event. Here the feed calls each stream's `push` in its
own turn of the event loop, and `push` runs the ASGI `send` at once: the server's `send` only
waits when the socket's buffer is full, so nearly every frame is written then and there. A send
that has to wait is carried on by a task, and what comes meanwhile queues behind it, in order.
A stream that falls `MAX_BACKLOG` frames behind (a client that stopped reading) is ended: its
client resumes with Last-Event-ID from the database, nothing lost.

The stream's own task only starts it, catches up from the database when the feed's memory does
not reach back far enough, and on its keep-alive turn checks the session (the stream ends with
it) and sends a comment so that proxies keep the connection.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

import msgspec
import structlog
from litestar import Response
from redis.exceptions import RedisError

from casemgr.alerts import service
from casemgr.alerts.feed import FeedLost, Subscription, sse_frame
from casemgr.context import RequestContext
from casemgr.db import scoped_transaction
from casemgr.resources import Resources

log = structlog.get_logger(__name__)

KEEP_ALIVE_FRAME = b": keep-alive\r\n\r\n"
MAX_BACKLOG = 10_000
# How long an ending stream waits for a write the socket has not taken yet.
DRAIN_S = 5.0
_BATCH = 500
_encode = msgspec.json.Encoder().encode
HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def run_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` now, in the caller's turn of the event loop, until it ends (None) or first
    waits (a task carries it on from there). Python 3.12's eager tasks do this; 3.11 has none."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    task = asyncio.get_running_loop().create_task(_carry_on(coro, waiting_on))
    # A task cancelled before its first step never resumes the coroutine: close it, so that it
    # unwinds (its finally blocks run) rather than linger half-done.
    task.add_done_callback(lambda _: coro.close())
    return task


async def _carry_on(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    await _resume(coro, waiting_on)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any, None]:
    # What `await` does for a coroutine that has already started: hand the future it waits on
    # to the task, and pass the outcome back in.
    while True:
        try:
            value = yield waiting_on
        except BaseException as e:  # cancellation, or the awaited future's error
            try:
                waiting_on = coro.throw(e)
            except StopIteration:
                return
        else:
            try:
                waiting_on = coro.send(value)
            except StopIteration:
                return


class LiveStream:
    """The ASGI app of one stream, from ``after`` (a change number) on."""

    def __init__(self, resources: Resources, ctx: RequestContext, token: str, after: int) -> None:
        self._resources = resources
        self._ctx = ctx
        self._token = token
        self._after = after
        self._send: Any = None
        self._sending: asyncio.Task[None] | None = None
        self._backlog: list[bytes] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._subscription: Subscription | None = None
        self.ended = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self._send = send
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        listener = asyncio.create_task(self._until_disconnect(receive))
        try:
            await self.run()
        finally:
            listener.cancel()
            try:
                async with asyncio.timeout(DRAIN_S):
                    await self._idle.wait()  # the last frames, unless the socket is gone
            except TimeoutError:
                if self._sending is not None:
                    self._sending.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _until_disconnect(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.end()

    def end(self) -> None:
        self.ended = True
        if self._subscription is not None:
            self._subscription.close()

    async def run(self) -> None:
        """Until the client goes, the session ends, or the stream falls too far behind."""
        resources, ctx = self._resources, self._ctx
        feed = resources.alert_feed
        after = self._after
        while not self.ended:
            await feed.ensure_listening()
            # Behind what the feed remembers (a resume from long ago, or the feed lost its
            # memory): the caller's own scoped reads until the memory reaches them.
            while not feed.covers(after) and not self.ended:
                async with scoped_transaction(resources.pool, ctx.caller) as conn:
                    # Change numbers follow commit order: every change up to `upto` is readable now.
                    upto = await service.last_change(conn)
                    changes = await service.changes_since(conn, ctx, after, _BATCH, resources.clock.now())
                if not changes:
                    after = max(after, upto)  # nothing up to `upto` is for this caller
                    if not feed.covers(after):
                        await asyncio.sleep(1.0)  # the feed is not listening (PostgreSQL away?)
                    continue
                # Each event carries the alert as it is now; an earlier change of the same alert
                # in the same read is superseded by the later one and not sent.
                latest = {alert.id: change_id for change_id, alert in changes}
                self.push(
                    [
                        sse_frame(change_id, _encode(alert))
                        for change_id, alert in changes
                        if latest[alert.id] == change_id
                    ]
                )
                after = changes[-1][0]
                await self._idle.wait()  # the client's pace, not the database's
            if self.ended:
                return
            subscription = self._subscription = feed.subscribe(ctx.caller, after, self.push)
            if self.ended:
                subscription.close()
            try:
                while await subscription.next_turn():
                    if not await self._session_alive():
                        return
                    self.push([KEEP_ALIVE_FRAME])
                return
            except FeedLost:
                after = subscription.after
            finally:
                feed.unsubscribe(subscription)
                self._subscription = None

    async def _session_alive(self) -> bool:
        try:
            return await self._resources.sessions.resolve(self._token) is not None
        except RedisError as e:  # the session store is away for a moment: keep the stream
            log.warning("alert_stream_session_check_failed", error_type=type(e).__name__)
            return True

    def push(self, frames: list[bytes]) -> None:
        """Write the frames now if the socket takes them, else after what is waiting."""
        if not frames or self.ended:
            return
        if self._sending is not None:
            self._backlog.extend(frames)
            if len(self._backlog) > MAX_BACKLOG:
                log.warning("alert_stream_too_far_behind", frames=len(self._backlog))
                self._backlog.clear()
                self.end()
            return
        body = frames[0] if len(frames) == 1 else b"".join(frames)
        message = {"type": "http.response.body", "body": body, "more_body": True}
        try:
            self._sending = run_eagerly(self._send(message))
        except Exception as e:  # the connection is gone in a way the server reports
            log.warning("alert_stream_send_failed", error_type=type(e).__name__)
            self.end()
            return
        if self._sending is not None:
            self._idle.clear()
            self._sending.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending = None
        failed = None if task.cancelled() else task.exception()
        if task.cancelled() or failed is not None:
            if failed is not None:
                log.warning("alert_stream_send_failed", error_type=type(failed).__name__)
            self._backlog.clear()
            self.end()
        elif self._backlog:
            frames, self._backlog = self._backlog, []
            self.push(frames)
        if self._sending is None:
            self._idle.set()


class EventStream(Response[None]):
    """What the stream's route returns: Litestar hands the connection to the LiveStream."""

    def __init__(self, stream: LiveStream) -> None:
        super().__init__(content=None, media_type="text/event-stream")
        self.stream = stream

    def to_asgi_response(self, app: Any, request: Any, **_: Any) -> Any:
        return self.stream
