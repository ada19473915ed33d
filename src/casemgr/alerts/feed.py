"""The live alert feed of one process.

One connection LISTENs to `alert_changes` (PostgreSQL notifies the change number after each
alert is written). On each notification the feed reads what changed once, for the whole
process, and keeps the latest changes in memory with what deciding visibility needs (the
unit's path, the case's program and police sharing); then it wakes the streaming clients,
which take from memory what their scope and role admit (`visible`, the row policies' rules).
A client further behind than the memory reaches reads through its own scoped transaction.
Every client reads anyway after its keep-alive period, so a lost notification, or a lost
listening connection (made anew), delays an event, never drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import asyncpg
import msgspec
import structlog

from casemgr.alerts import repository
from casemgr.auth.principal import Principal, Role

log = structlog.get_logger(__name__)
CHANNEL = "alert_changes"
_BATCH = 1000
_encode = msgspec.json.Encoder().encode


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


class AlertFeed:
    def __init__(self, dsn: str, memory: int = 20_000) -> None:
        self._dsn = dsn
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._event = asyncio.Event()
        self._items: deque[FeedItem] = deque(maxlen=memory)
        self._refreshing: asyncio.Task[None] | None = None
        # A notification that came while a read was running: read again after it.
        self._pending = False
        # Every change after `floor` up to `head` is in memory.
        self.floor = 0
        self.head = 0
        # How many refreshes this process has made: a client compares it before and after
        # reading, so a refresh between the two is never slept through.
        self.changes = 0

    async def ensure_listening(self) -> None:
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
            # What happened while nobody listened is not in memory: clients read it themselves.
            self._items.clear()
            self.floor = self.head = head
            self._wake()

    def _notified(self, *_: object) -> None:
        self._pending = True
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        while self._pending:
            self._pending = False
            await self._read()
            self._wake()

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

    def _wake(self) -> None:
        self.changes += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def covers(self, after: int) -> bool:
        """Whether every change after ``after`` that the feed has read is in memory."""
        return self._connection is not None and after >= self.floor

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

    async def wait(self, seen: int, patience_s: float) -> bool:
        """Until a refresh after ``seen`` (True) or ``patience_s`` pass (False)."""
        await self.ensure_listening()
        if self.changes != seen:
            return True
        event = self._event
        try:
            async with asyncio.timeout(patience_s):
                await event.wait()
        except TimeoutError:
            self._notified()  # a notification may have been lost: read anyway
            return False
        return True

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        if self._connection is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self._connection.close()
