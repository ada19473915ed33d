"""The Redis client: one server, or a Redis Cluster. Created inside the running event loop,
closed with ``aclose()``.

Every key the service writes carries a hash tag (``{...}``) and every command or script
touches one key or keys of one slot, so the same code runs against a single server and
against a cluster.
"""

from __future__ import annotations

from typing import TypeAlias

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.exceptions import RedisError, ResponseError

RedisClient: TypeAlias = Redis | RedisCluster
# Connections per process to a single Redis server. Commands beyond it wait for a free one
# instead of opening more: thousands of concurrent requests (10,000 live alert streams
# checking their sessions at once) would otherwise exceed Redis's maxclients.
MAX_CONNECTIONS = 64


def create_redis(url: str, *, cluster: bool = False) -> RedisClient:
    if cluster:
        # redis-py's cluster client has no blocking pool (its max_connections fails with an
        # IndexError when reached, seen with redis 8.1): left unbounded; size each node's
        # maxclients for the processes in front of it.
        return RedisCluster.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=5,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def failure_reason(error: BaseException) -> str | None:
    """What a failure says of Redis or the network, for a log line ("Connection closed by
    server.", "No connection available."); None for any other error, whose text (a handler's,
    PostgreSQL's, a script's) may quote the values of a row."""
    if isinstance(error, RedisError | OSError) and not isinstance(error, ResponseError):
        return str(error)
    return None
