"""The end-to-end tests' servers share the machine's Redis: what they left in it goes when the
run ends (each test's own database is dropped by its fixture)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.e2e.test_process import SERVER_NAMESPACES


@pytest.fixture(scope="session", autouse=True)
def drop_server_namespaces() -> Iterator[None]:
    yield
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for namespace in SERVER_NAMESPACES:
            keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.unlink(*keys[start : start + 1000])
    finally:
        client.close()
