"""The live alert feed of one process: one LISTEN connection wakes every streaming client.

PostgreSQL notifies `alert_changes` with the change number after each alert is written; the
clients then read what changed inside their own scope. A client that notices nothing within
its keep-alive period reads anyway, so a lost notification (or a lost listening connection,
which is made anew) delays an event, never drops it.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

log = structlog.get_logger(__name__)
CHANNEL = "alert_changes"


class AlertFeed:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._event = asyncio.Event()
        # How many notifications this process has received: a client compares it before and
        # after reading, so a notification between the two is never slept through.
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
            except (OSError, asyncpg.PostgresError) as e:
                log.warning("alert_feed_listen_failed", error_type=type(e).__name__)
                return
            self._connection = connection
            self._wake()  # whatever happened while nobody listened: read it

    def _notified(self, *_: object) -> None:
        self._wake()

    def _wake(self) -> None:
        self.changes += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, seen: int, patience_s: float) -> bool:
        """Until a change after ``seen`` arrives (True) or ``patience_s`` pass (False)."""
        await self.ensure_listening()
        if self.changes != seen:
            return True
        event = self._event
        try:
            async with asyncio.timeout(patience_s):
                await event.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self._connection.close()
