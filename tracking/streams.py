"""Reading the sharded streams with consumer groups, so that nothing queued is lost.

A consumer reads each shard in turn: first the entries another consumer took and never
acknowledged (it died) once they have been idle long enough, then new ones. An entry is
acknowledged only after its handler has committed what it wrote, so a crash between the two
delivers it again, and the handlers are idempotent. Acknowledged entries are trimmed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import structlog
from redis.exceptions import RedisError, ResponseError

from casemgr.redis_client import RedisClient

log = structlog.get_logger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
Handler = Callable[[list[Entry]], Awaitable[None]]


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(slots=True)
class StreamConsumer:
    redis: RedisClient
    streams: list[str]
    group: str
    handler: Handler
    consumer: str = field(default_factory=consumer_name)
    batch: int = 1000
    reclaim_idle_ms: int = 30_000
    trim_every_s: float = 5.0
    _trimmed_at: dict[str, float] = field(default_factory=dict)

    async def ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    async def poll(self, stream: str) -> int:
        """Handle what is waiting on one shard; returns how many entries were handled."""
        _, claimed, _ = await self.redis.xautoclaim(
            stream, self.group, self.consumer, self.reclaim_idle_ms, start_id="0-0", count=self.batch
        )
        entries: list[Entry] = list(claimed)
        if len(entries) < self.batch:
            fresh = await self.redis.xreadgroup(
                self.group, self.consumer, {stream: ">"}, count=self.batch - len(entries)
            )
            for _, items in cast(list[tuple[bytes, list[Entry]]], fresh or []):
                entries.extend(items)
        if entries:
            await self.handler(entries)
            await self.redis.xack(stream, self.group, *[entry_id for entry_id, _ in entries])
        if time.monotonic() - self._trimmed_at.get(stream, 0.0) > self.trim_every_s:
            await self._trim(stream)
        return len(entries)

    async def _trim(self, stream: str) -> None:
        """Drop entries every consumer of the group has acknowledged."""
        self._trimmed_at[stream] = time.monotonic()
        groups = await self.redis.xinfo_groups(stream)
        ours = next((g for g in groups if _text(g["name"]) == self.group), None)
        if ours is None:
            return
        floor = _text(ours["last-delivered-id"])
        pending = await self.redis.xpending(stream, self.group)
        if pending["pending"]:
            floor = min(floor, _text(pending["min"]), key=_stream_id)
        if len(groups) == 1 and floor != "0-0":
            await self.redis.xtrim(stream, minid=floor, approximate=False)
            # MINID keeps the floor entry itself; with nothing pending it is acknowledged too.
            if not pending["pending"]:
                await self.redis.xdel(stream, floor)

    async def run_once(self) -> int:
        handled = 0
        for stream in self.streams:
            handled += await self.poll(stream)
        return handled

    async def run_forever(self, idle_sleep_s: float = 0.05) -> None:
        await self.ensure_groups()
        while True:
            try:
                if await self.run_once() == 0:
                    await asyncio.sleep(idle_sleep_s)
            except (RedisError, OSError) as e:
                log.warning("stream_consumer_failed", group=self.group, error_type=type(e).__name__)
                await asyncio.sleep(1.0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)
