"""Redis key names of the tracking core.

Devices are spread over a fixed number of shards by a hash of their id. A shard is one hash
tag, so one Redis Cluster slot, and holds the configuration and state of its devices, its ping
stream, its alert stream and its deadlines: the ingest script of one device, and the watchdog
of one shard, touch a single slot, and every stream has its own slot.

Every name starts with a namespace ("trk"), so that two deployments, or two tests, can share
one Redis without meeting.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

DEFAULT_SHARDS = 64
DEFAULT_NAMESPACE = "trk"


@dataclass(frozen=True, slots=True)
class ShardKeys:
    namespace: str
    shard: int

    @property
    def tag(self) -> str:
        return f"{self.namespace}:{{{self.namespace}{self.shard}}}"

    @property
    def pings(self) -> str:
        return f"{self.tag}:pings"

    @property
    def alerts(self) -> str:
        return f"{self.tag}:alerts"

    @property
    def deadlines(self) -> str:
        return f"{self.tag}:due"

    def deadlines_of_second(self, second: int) -> str:
        """The no_signal deadlines that fall in one second (Unix time), until the watchdog moves
        them into `deadlines` when the second begins (scripts/ingest.lua says why)."""
        return f"{self.deadlines}:{second}"

    @property
    def deadlines_next_second(self) -> str:
        """The first second whose set the watchdog has not yet moved (scripts/claim.lua)."""
        return f"{self.deadlines}:next"


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    device_id: str
    shard: ShardKeys

    @property
    def config(self) -> str:
        return f"{self.shard.tag}:cfg:{self.device_id}"

    @property
    def state(self) -> str:
        return f"{self.shard.tag}:st:{self.device_id}"

    @property
    def seen(self) -> str:
        return f"{self.shard.tag}:seen:{self.device_id}"

    @property
    def blob(self) -> str:
        """The whole configuration for the ingest workers, apart from the small hash the
        scripts read (which stays in Redis's compact encoding that way)."""
        return f"{self.shard.tag}:blob:{self.device_id}"

    def all(self) -> list[str]:
        """KEYS of every device script, in the order scripts/common.lua expects them."""
        return [
            self.config,
            self.state,
            self.seen,
            self.shard.pings,
            self.shard.alerts,
            self.shard.deadlines,
            self.blob,
        ]

    def for_publish(self) -> list[str]:
        """KEYS of scripts/publish.lua."""
        return [self.config, self.state, self.seen, self.shard.deadlines, self.blob]


@dataclass(frozen=True, slots=True)
class KeySpace:
    shards: int = DEFAULT_SHARDS
    namespace: str = DEFAULT_NAMESPACE

    def shard_of(self, device_id: str) -> int:
        return zlib.crc32(device_id.encode()) % self.shards

    def shard(self, shard: int) -> ShardKeys:
        return ShardKeys(self.namespace, shard)

    def device(self, device_id: str) -> DeviceKeys:
        return DeviceKeys(device_id, ShardKeys(self.namespace, self.shard_of(device_id)))

    def all_shards(self) -> list[ShardKeys]:
        return [ShardKeys(self.namespace, k) for k in range(self.shards)]
