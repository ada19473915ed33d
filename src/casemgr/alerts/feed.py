"""The live alert feed of one process.

One connection LISTENs to `alert_changes` (PostgreSQL notifies the change number after each
alert is written). On each notification the feed reads what changed once, for the whole
process, and keeps the latest changes in memory with what deciding visibility needs (the
unit's path, the case's program and police sharing). Then it hands each live stream the
frames its caller may see (`visible`, the row policies' rules, decided once per role and
scope), which the stream writes at once (push.py): with 10,000 streams in a process, the work
per change is one pass over the subscriptions, with no task woken per stream.

A stream further behind than the memory reaches reads through its own scoped transaction
until it catches up, then subscribes. A ticker does what no single stream should do 10,000
times: once a second it reads anyway (a lost notification delays an event, never drops it)
and checks the listening connection (a lost one is made anew, and every subscription falls
back to reading for itself); each subscription gets a keep-alive tick every `keep_alive_s`,
spread over the period in tenths of a second so that few sessions are checked at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable

import asyncpg
import msgspec
import structlog

from casemgr.alerts import repository
from casemgr.auth.principal import Principal, Role

log = structlog.get_logger(__name__)
CHANNEL = "alert_changes"
_BATCH = 1000
_TICK_S = 0.1
_TICKS_PER_SECOND = 10
_encode = msgspec.json.Encoder().encode
# Where a subscription's frames go: called in the feed's turn, it must not wait.
Push = Callable[[list[bytes]], None]


class FeedItem(msgspec.Struct, frozen=True, gc=False):
    change_id: int
    alert_id: int
    case_id: int | None
    org_path: str
    program: str | None
    shared_with_police: bool
    # The Server-Sent Events frame of the change, encoded once for every client.
    frame: bytes


def sse_frame(change_id: int, data: bytes) -> bytes:
    """One Server-Sent Event: the change number as its id, the alert as JSON."""
    return b"id: %d\r\nevent: alert\r\ndata: %s\r\n\r\n" % (change_id, data)


def _superseded(items: list[FeedItem]) -> set[int]:
    latest: dict[int, int] = {}
    for item in items:
        latest[item.alert_id] = item.change_id
    return {item.change_id for item in items if latest[item.alert_id] != item.change_id}


def visible(caller: Principal, item: FeedItem) -> bool:
    """What the row policies let this caller read (see migrations 0005 and 0009)."""
    if not caller.sees(item.org_path):
        return False
    if caller.role in (Role.OFFICER, Role.SUPERVISOR):
        return True
    if item.case_id is None:
        return False
    if caller.role is Role.HEALTH_WORKER:
        return item.program == "severe_mental_illness"
    if caller.role is Role.POLICE_LIAISON:
        return item.shared_with_police
    return False


class FeedLost(Exception):
    """The feed's memory no longer reaches the subscription: read to catch up, then subscribe again."""


class Subscription:
    """A live stream's place in the feed: how far it has got, and where its frames go. The feed
    hands the frames its caller may see straight to ``push`` (see push.py), in order; the stream's
    own task wakes only for a keep-alive turn, a lost feed, or its end."""

    __slots__ = ("_waiter", "after", "audience", "caller", "closed", "lost", "phase", "push", "tick_due")

    def __init__(
        self, caller: Principal, after: int, phase: int, push: Callable[[list[bytes]], None]
    ) -> None:
        self.caller = caller
        # What `visible` looks at: callers alike see alike, and the feed decides once for them.
        self.audience = (caller.role, caller.scope)
        self.after = after
        self.phase = phase
        self.push = push
        self.tick_due = False
        self.lost = False
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, items: list[FeedItem], superseded: set[int]) -> None:
        frames = []
        for item in items:
            if item.change_id <= self.after:
                continue
            if item.change_id not in superseded and visible(self.caller, item):
                frames.append(item.frame)
            self.after = item.change_id
        if frames:
            self.push(frames)

    def take(self, frames: list[bytes], upto: int) -> None:
        """Frames decided for this subscription's audience, of every change up to ``upto``."""
        self.after = upto
        if frames:
            self.push(frames)

    def close(self) -> None:
        self.closed = True
        self.wake()

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_turn(self) -> bool:
        """Until a keep-alive is due (True) or the stream has ended (False). Raises FeedLost."""
        while not self.tick_due and not self.lost and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self.lost:
            raise FeedLost
        self.tick_due = False
        return not self.closed


class AlertFeed:
    def __init__(self, dsn: str, memory: int = 20_000, keep_alive_s: float = 15.0) -> None:
        self._dsn = dsn
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._items: deque[FeedItem] = deque(maxlen=memory)
        self._refreshing: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._subscriptions: set[Subscription] = set()
        self._phases = itertools.count()
        # A notification that came while a read was running: read again after it.
        self._pending = False
        self.keep_alive_s = keep_alive_s
        # Every change after `floor` up to `head` is in memory.
        self.floor = 0
        self.head = 0

    async def ensure_listening(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
        if self._connection is not None and not self._connection.is_closed():
            return
        async with self._lock:
            if self._connection is not None and not self._connection.is_closed():
                return
            try:
                connection = await asyncpg.connect(self._dsn)
                await connection.add_listener(CHANNEL, self._notified)
                head = await repository.last_change(connection)
            except (OSError, asyncpg.PostgresError) as e:
                log.warning("alert_feed_listen_failed", error_type=type(e).__name__)
                return
            self._connection = connection
            # What happened while nobody listened is not in memory: streams read it themselves.
            self._items.clear()
            self.floor = self.head = head
            for subscription in self._subscriptions:
                subscription.lost = True
                subscription.wake()

    def subscribe(self, caller: Principal, after: int, push: Push) -> Subscription:
        """Live from ``after`` on; the caller has read up to where the memory begins (if the
        memory is lost meanwhile, the subscription says so at its first `next_turn`)."""
        subscription = Subscription(caller, after, next(self._phases), push)
        self._subscriptions.add(subscription)
        if not self.covers(after):
            subscription.lost = True
        else:
            # Changes already in memory past `after` (read while the stream caught up).
            pending = self.after(after)
            subscription.offer(pending, _superseded(pending))
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def _notified(self, *_: object) -> None:
        self._pending = True
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        while self._pending:
            self._pending = False
            head = self.head
            await self._read()
            if self.head != head:
                self._deliver(self.after(head))

    def _deliver(self, items: list[FeedItem]) -> None:
        # An earlier change of an alert read together with a later one is superseded: each
        # event carries the alert as it is now.
        superseded = _superseded(items)
        first, last = items[0].change_id, items[-1].change_id
        frames_for: dict[tuple[Role, str], list[bytes]] = {}
        for subscription in self._subscriptions:
            if subscription.after < self.floor:  # more changes at once than the memory holds
                subscription.lost = True
                subscription.wake()
            elif subscription.after >= last:
                continue  # subscribed while these were read: it has them
            elif subscription.after < first:
                frames = frames_for.get(subscription.audience)
                if frames is None:
                    caller = subscription.caller
                    frames = [i.frame for i in items if i.change_id not in superseded and visible(caller, i)]
                    frames_for[subscription.audience] = frames
                subscription.take(frames, last)
            else:
                subscription.offer(items, superseded)

    async def _tick(self) -> None:
        """Once a second: listen (again) and read (a notification may have been lost). Every
        tenth of a second: a keep-alive tick to the subscriptions whose turn it is. So fine a
        spread because each tick wakes a stream to check its session: with 10,000 streams,
        667 checks at once every second put an alert's p99 at 49 ms, 67 every tenth at 18-24
        (bench/alert_stream.py)."""
        step = 0
        while True:
            await asyncio.sleep(_TICK_S)
            step += 1
            if step % _TICKS_PER_SECOND == 0:
                await self.ensure_listening()
                self._notified()
            period = max(1, round(self.keep_alive_s / _TICK_S))
            for subscription in self._subscriptions:
                if subscription.phase % period == step % period:
                    subscription.tick_due = True
                    subscription.wake()

    async def _read(self) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            while True:
                rows = await repository.feed_after(connection, self.head, _BATCH)
                for row in rows:
                    if len(self._items) == self._items.maxlen:
                        self.floor = self._items[0].change_id
                    self._items.append(
                        FeedItem(
                            change_id=row.change_id,
                            alert_id=row.alert.id,
                            case_id=row.alert.case_id,
                            org_path=row.org_path,
                            program=row.program,
                            shared_with_police=row.shared_with_police,
                            frame=sse_frame(row.change_id, _encode(row.alert)),
                        )
                    )
                    self.head = row.change_id
                if len(rows) < _BATCH:
                    break
        except (OSError, asyncpg.PostgresError) as e:
            log.warning("alert_feed_read_failed", error_type=type(e).__name__)

    def covers(self, after: int) -> bool:
        """Whether every change after ``after`` that the feed has read is in memory."""
        connection = self._connection
        return connection is not None and not connection.is_closed() and after >= self.floor

    def after(self, after: int) -> list[FeedItem]:
        """The changes after ``after``, oldest first. Walked from the newest end: a live client
        is a change or two behind, and each wake-up of 10,000 clients must not read the whole
        memory 10,000 times."""
        newer: list[FeedItem] = []
        for item in reversed(self._items):
            if item.change_id <= after:
                break
            newer.append(item)
        newer.reverse()
        return newer

    async def close(self) -> None:
        for task in (self._refreshing, self._ticker):
            if task is not None:
                task.cancel()
        if self._connection is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self._connection.close()
