"""Sessions on a real Redis Cluster: every command and script stays inside one slot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from casemgr.auth.principal import MfaState, Role
from casemgr.auth.sessions import SessionStore
from casemgr.clock import ManualClock
from casemgr.redis_client import RedisClient, create_redis
from tests.servers import redis_cluster


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_cluster(Path(tmp_path_factory.mktemp("cluster"))) as url:
        yield url


@pytest.fixture
async def cluster_client(cluster_url: str) -> AsyncIterator[RedisClient]:
    client = create_redis(cluster_url, cluster=True)
    yield client
    await client.aclose()


async def test_sessions_issue_resolve_expire_and_revoke_on_a_cluster(
    cluster_client: RedisClient, clock: ManualClock
) -> None:
    store = SessionStore(
        cluster_client, clock, idle_seconds=1800, absolute_seconds=43200, pending_seconds=300
    )
    issued = [
        await store.issue(account_id=42, role=Role.OFFICER, org_unit_id=7, scope="n1.n7", mfa=MfaState.PASSED)
        for _ in range(12)  # enough sessions to land in several slots on several nodes
    ]
    for session in issued:
        resolved = await store.resolve(session.token)
        assert resolved is not None and resolved.account_id == 42
    await store.revoke(issued[0].principal)
    assert await store.resolve(issued[0].token) is None
    assert await store.revoke_account(42, keep=issued[1].principal.session_id) == 10
    assert await store.resolve(issued[1].token) is not None
    assert all([await store.resolve(s.token) is None for s in issued[2:]])
    clock.advance(timedelta(minutes=31))
    assert await store.resolve(issued[1].token) is None
