"""The Redis client. Created inside the running event loop, closed with ``aclose()``."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
