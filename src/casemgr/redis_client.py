"""The Redis client: one server, or a Redis Cluster. Created inside the running event loop,
closed with ``aclose()``.

Every key the service writes carries a hash tag (``{...}``) and every command or script
touches one key or keys of one slot, so the same code runs against a single server and
against a cluster.
"""

from __future__ import annotations

from typing import TypeAlias

from redis.asyncio import Redis, RedisCluster

RedisClient: TypeAlias = Redis | RedisCluster


def create_redis(url: str, *, cluster: bool = False) -> RedisClient:
    if cluster:
        return RedisCluster.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
