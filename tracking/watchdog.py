"""The watchdog: alerts that time raises, not uploads (no_signal, curfew start, curfew end).

Each shard keeps its deadlines in one sorted set scored by due time: publishing a
configuration schedules the first curfew start (plus grace) and end of each scheduled zone, and
every handled curfew deadline schedules the next. An upload pushes its device's no_signal
deadline forward into a set of the second it falls in, which joins the sorted set when that
second begins (scripts/ingest.lua says why). A tick asks each shard only for the seconds gone by
and what is due, so its work grows with the number of deadlines due, not with the number of
subjects. Deadlines are leased while handled: a watchdog that dies mid-tick leaves them to the
next one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import msgspec
import structlog
from redis.exceptions import RedisError

from casemgr.redis_client import RedisClient, failure_reason
from tracking.contract import DeviceConfig
from tracking.keys import KeySpace
from tracking.schedule import CompiledSchedule, Window, parse_time_zone
from tracking.scripts import Scripts

log = structlog.get_logger(__name__)
_config_decoder = msgspec.msgpack.Decoder(DeviceConfig)


@dataclass(slots=True)
class Watchdog:
    redis: RedisClient
    scripts: Scripts
    keyspace: KeySpace
    batch: int = 500
    lease_ms: int = 60_000
    _schedules: dict[tuple[str, int, int], tuple[CompiledSchedule, int]] = field(default_factory=dict)

    async def tick(self) -> dict[str, int]:
        """Handle every deadline due now, shard by shard; returns what was done, by action."""
        done: dict[str, int] = {}
        for shard in self.keyspace.all_shards():
            while True:
                caught_up, *due = await self.scripts.claim(
                    keys=[shard.deadlines], args=[self.batch, self.lease_ms]
                )
                for member, score in zip(due[::2], due[1::2], strict=True):
                    action = await self._handle(member.decode(), int(float(score)))
                    done[action] = done.get(action, 0) + 1
                if caught_up and len(due) < 2 * self.batch:
                    break
        return done

    async def _handle(self, member: str, due_ms: int) -> str:
        kind, device_id, *rest = member.split("|")
        next_ms = ""
        if kind in ("cs", "ce"):
            found = await self._schedule(device_id, int(rest[0]))
            if found is not None:
                schedule, grace_ms = found
                following = (
                    schedule.next_start_after(due_ms - grace_ms)
                    if kind == "cs"
                    else schedule.next_end_after(due_ms)
                )
                if following is not None:
                    next_ms = str(following + grace_ms if kind == "cs" else following)
        keys = self.keyspace.device(device_id).all()
        result = await self.scripts.deadline(keys=keys, args=[member, next_ms])
        return result.decode() if isinstance(result, bytes) else str(result)

    async def _schedule(self, device_id: str, zone_id: int) -> tuple[CompiledSchedule, int] | None:
        blob = await self.redis.get(self.keyspace.device(device_id).blob)
        if not blob:
            return None
        config = _config_decoder.decode(blob if isinstance(blob, bytes) else blob.encode())
        key = (device_id, zone_id, config.version)
        if key not in self._schedules:
            spec = next((z for z in config.zones if z.id == zone_id), None)
            if spec is None or not spec.schedule:
                return None
            if len(self._schedules) > 10_000:
                self._schedules.clear()
            windows = tuple(Window(tuple(w.days), w.start, w.end) for w in spec.schedule)
            self._schedules[key] = (
                CompiledSchedule(windows, parse_time_zone(config.time_zone)),
                spec.grace_minutes * 60_000,
            )
        return self._schedules[key]

    async def run_forever(self, every_s: float = 1.0) -> None:
        while True:
            try:
                done = await self.tick()
                if any(k in done for k in ("raised", "cs", "ce")):
                    log.info("watchdog_tick", **done)
            except (RedisError, OSError) as e:
                log.warning("watchdog_failed", error_type=type(e).__name__, reason=failure_reason(e))
            await asyncio.sleep(every_s)
