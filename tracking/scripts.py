"""The Redis scripts of the tracking core, registered once per client.

Each device script is the shared prelude (scripts/common.lua: configuration, state and alert
helpers) followed by its own body, so the rules of raising and clearing live in one place.
redis-py sends EVALSHA and loads a script on NOSCRIPT, on a single server and on every node
of a cluster alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis.commands.core import AsyncScript

from casemgr.redis_client import RedisClient


def _source(name: str) -> str:
    return resources.files("tracking").joinpath("scripts").joinpath(name).read_text()


@dataclass(frozen=True, slots=True)
class Scripts:
    ingest: AsyncScript
    cross: AsyncScript
    deadline: AsyncScript
    clear: AsyncScript
    claim: AsyncScript
    publish: AsyncScript

    @classmethod
    def register(cls, redis: RedisClient) -> Scripts:
        common = _source("common.lua")

        def device_script(name: str) -> AsyncScript:
            return redis.register_script(common + "\n" + _source(name))

        return cls(
            ingest=device_script("ingest.lua"),
            cross=device_script("cross.lua"),
            deadline=device_script("deadline.lua"),
            clear=device_script("clear.lua"),
            claim=redis.register_script(_source("claim.lua")),
            publish=redis.register_script(_source("publish.lua")),
        )
