"""Helpers for the set-up scripts: does a PostgreSQL or Redis answer, create a database.

Exit status 0 means yes/done, 1 means no. Runs in the project's virtual environment.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.asyncio import Redis


async def postgres_answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except Exception:
        return False
    await conn.close()
    return True


async def redis_answers(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


async def ensure_database(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def postgis(admin_url: str) -> tuple[bool, int]:
    """Whether the server can create the PostGIS extension, and its major version."""
    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        available = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")
        return bool(available), int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


def main() -> int:
    command, *args = sys.argv[1:]
    if command == "pg":
        return 0 if asyncio.run(postgres_answers(args[0])) else 1
    if command == "redis":
        return 0 if asyncio.run(redis_answers(args[0])) else 1
    if command == "postgis":  # prints the server's major version; 0 if PostGIS is there
        available, major = asyncio.run(postgis(args[0]))
        print(major)
        return 0 if available else 1
    if command == "createdb":
        print(asyncio.run(ensure_database(args[0], args[1])))
        return 0
    print(f"unknown command {command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
