"""Reading the sharded streams with consumer groups, so that nothing queued is lost.

A consumer sweeps every shard at once: the entries another consumer took and never
acknowledged (it died) once they have been idle long enough, then new ones. An entry is
acknowledged only after its handler has committed what it wrote, so a crash between the two
delivers it again, and the handlers are idempotent. Acknowledged entries are trimmed.

A consumer with nothing to do waits for the next entry. On one Redis server it waits inside
one blocking XREADGROUP over every shard, which returns as soon as an entry arrives (an alert
reaches the officers' streams without waiting for a sweep); it is the one command here that
names keys of several slots, which a Redis Cluster refuses, so there it sweeps again after
``idle_poll_s``.
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
from redis.asyncio import RedisCluster
from redis.exceptions import ResponseError

from casemgr.redis_client import RedisClient, failure_reason

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
    # Entries handled per sweep over every shard, shared out between the shards.
    batch: int = 2000
    reclaim_idle_ms: int = 30_000
    reclaim_every_s: float = 1.0
    trim_every_s: float = 5.0
    # An idle consumer's wait: at most idle_wait_s for an entry on one Redis, idle_poll_s
    # between sweeps on a Redis Cluster.
    idle_wait_s: float = 1.0
    idle_poll_s: float = 0.05
    _reclaimed_at: float = 0.0
    _trimmed_at: float = 0.0
    # Set when a sweep failed: the entries it took are pending under this consumer's name, and
    # the next sweep takes them again at once (another consumer would wait reclaim_idle_ms).
    _retry_own: bool = False

    async def ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    async def run_once(self) -> int:
        """One sweep over every shard; returns how many entries were handled."""
        return await self.poll(self.streams)

    async def poll(self, streams: list[str]) -> int:
        """Handle what is waiting on these shards, in three pipelined round trips whatever their
        number (a round trip per shard made a sweep of 64 shards take ~0.5 s under load): take
        what a dead consumer left and what is new, hand it all to the handler at once, then
        acknowledge it."""
        handled = await self._handle(await self._take(streams))
        if time.monotonic() - self._trimmed_at > self.trim_every_s:
            await self._trim(streams)
        return handled

    async def wait(self) -> int:
        """What an idle consumer does instead of sweeping: wait for new entries and handle them
        (on a Redis Cluster, just wait); returns how many were handled."""
        if isinstance(self.redis, RedisCluster):
            await asyncio.sleep(self.idle_poll_s)
            return 0
        read = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(self.streams, ">"),
            count=max(1, self.batch // len(self.streams)),
            block=max(1, int(self.idle_wait_s * 1000)),
        )
        taken: dict[str, list[Entry]] = {}
        for stream, items in cast(list[tuple[bytes, list[Entry]]], read or []):
            taken[_text(stream)] = [(entry_id, fields) for entry_id, fields in items if fields]
        return await self._handle(taken)

    async def _handle(self, taken: dict[str, list[Entry]]) -> int:
        """Hand what was taken to the handler at once, then acknowledge it."""
        entries = [entry for items in taken.values() for entry in items]
        if entries:
            await self.handler(entries)
            pipe = self.redis.pipeline(transaction=False)
            for stream, items in taken.items():
                if items:
                    pipe.xack(stream, self.group, *[entry_id for entry_id, _ in items])
            await pipe.execute()
        return len(entries)

    async def _take(self, streams: list[str]) -> dict[str, list[Entry]]:
        per_stream = max(1, self.batch // len(streams))
        reclaim = time.monotonic() - self._reclaimed_at > self.reclaim_every_s
        pipe = self.redis.pipeline(transaction=False)
        retry_own, self._retry_own = self._retry_own, False
        if reclaim:
            self._reclaimed_at = time.monotonic()
            for stream in streams:
                pipe.xautoclaim(
                    stream, self.group, self.consumer, self.reclaim_idle_ms, start_id="0-0", count=per_stream
                )
        if retry_own:
            for stream in streams:  # "0": this consumer's own pending entries
                pipe.xreadgroup(self.group, self.consumer, {stream: "0"}, count=per_stream)
        for stream in streams:
            pipe.xreadgroup(self.group, self.consumer, {stream: ">"}, count=per_stream)
        replies = await pipe.execute()
        taken: dict[str, dict[bytes, Entry]] = {stream: {} for stream in streams}
        if reclaim:
            for stream, (_, claimed, _) in zip(streams, replies[: len(streams)], strict=True):
                taken[stream].update((entry_id, (entry_id, fields)) for entry_id, fields in claimed)
            replies = replies[len(streams) :]
        for index, read in enumerate(replies):
            stream = streams[index % len(streams)]
            for _, items in cast(list[tuple[bytes, list[Entry]]], read or []):
                # A pending entry trimmed meanwhile comes back without its fields: nothing to do.
                taken[stream].update((entry_id, (entry_id, fields)) for entry_id, fields in items if fields)
        return {stream: list(entries.values()) for stream, entries in taken.items()}

    async def _trim(self, streams: list[str]) -> None:
        """Drop entries every consumer of the group has acknowledged."""
        self._trimmed_at = time.monotonic()
        pipe = self.redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xinfo_groups(stream)
            pipe.xpending(stream, self.group)
        replies = await pipe.execute()
        trims = self.redis.pipeline(transaction=False)
        for stream, groups, pending in zip(streams, replies[::2], replies[1::2], strict=True):
            ours = next((g for g in groups if _text(g["name"]) == self.group), None)
            if ours is None or len(groups) != 1:
                continue
            floor = _text(ours["last-delivered-id"])
            if pending["pending"]:
                floor = min(floor, _text(pending["min"]), key=_stream_id)
            if floor != "0-0":
                trims.xtrim(stream, minid=floor, approximate=False)
                # MINID keeps the floor entry itself; with nothing pending it is acknowledged too.
                if not pending["pending"]:
                    trims.xdel(stream, floor)
        await trims.execute()

    async def run_forever(self) -> None:
        await self.ensure_groups()
        while True:
            try:
                if await self.run_once() == 0:
                    await self.wait()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # Redis or PostgreSQL away, or a batch the handler refused: nothing was
                # acknowledged, so it is all taken again once the cause is gone.
                log.warning(
                    "stream_consumer_failed",
                    group=self.group,
                    error_type=type(e).__name__,
                    reason=failure_reason(e),
                )
                self._retry_own = True
                await asyncio.sleep(1.0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)
