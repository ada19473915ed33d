"""Session tokens held in Redis, so that any of them can be revoked at once.

The client holds a random token; Redis holds the session under the token's SHA-256, so a
copy of Redis yields no usable token. A session ends at logout, after ``idle`` seconds
without a request, or ``absolute`` seconds after login, whichever comes first; a script
checks both limits and refreshes the idle deadline in one atomic round trip.
Every key of one session lives in one hash slot (Redis Cluster).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import datetime

import msgspec

from casemgr.auth.principal import MfaState, Principal, Role
from casemgr.clock import Clock
from casemgr.redis_client import RedisClient

_TOUCH = """
local s = redis.call('HGETALL', KEYS[1])
if #s == 0 then return false end
local h = {}
for i = 1, #s, 2 do h[s[i]] = s[i + 1] end
local now = tonumber(ARGV[1])
local idle = tonumber(h['idle'])
local expires = tonumber(h['expires'])
if now - tonumber(h['last_seen']) >= idle or now >= expires then
    redis.call('DEL', KEYS[1])
    return false
end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
redis.call('EXPIRE', KEYS[1], math.max(1, math.ceil(math.min(idle, expires - now))))
return h['principal']
"""


def _session_key(session_id: str) -> str:
    return f"cm:sess:{{{session_id}}}"


def _account_index_key(account_id: int) -> str:
    return f"cm:acct-sessions:{{{account_id}}}"


def session_id_for(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class IssuedSession(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    principal: Principal
    expires_at: datetime


class SessionStore:
    def __init__(
        self,
        redis: RedisClient,
        clock: Clock,
        *,
        idle_seconds: int,
        absolute_seconds: int,
        pending_seconds: int,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._idle = idle_seconds
        self._absolute = absolute_seconds
        self._pending = pending_seconds
        self._touch = redis.register_script(_TOUCH)
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(Principal)

    async def issue(
        self, *, account_id: int, role: Role, org_unit_id: int, scope: str, mfa: MfaState
    ) -> IssuedSession:
        token = secrets.token_urlsafe(32)
        session_id = session_id_for(token)
        principal = Principal(
            account_id=account_id,
            role=role,
            org_unit_id=org_unit_id,
            scope=scope,
            session_id=session_id,
            mfa=mfa,
        )
        now = self._clock.now().timestamp()
        # A session still waiting for its second factor lives only minutes.
        lifetime = self._absolute if principal.fully_authenticated else self._pending
        idle = min(self._idle, lifetime)
        expires = now + lifetime
        key = _session_key(session_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                key,
                mapping={
                    "principal": self._encoder.encode(principal),
                    "created": repr(now),
                    "last_seen": repr(now),
                    "idle": str(idle),
                    "expires": repr(expires),
                },
            )
            pipe.expire(key, math.ceil(idle))
            pipe.sadd(_account_index_key(account_id), session_id)
            pipe.expire(_account_index_key(account_id), self._absolute)
            await pipe.execute()
        return IssuedSession(
            token=token,
            principal=principal,
            expires_at=datetime.fromtimestamp(expires, tz=self._clock.now().tzinfo),
        )

    async def resolve(self, token: str) -> Principal | None:
        """The principal of a live session, refreshing its idle deadline; None if it ended."""
        raw = await self._touch(
            keys=[_session_key(session_id_for(token))],
            args=[repr(self._clock.now().timestamp())],
        )
        if raw is None:
            return None
        return self._decoder.decode(raw)

    async def revoke(self, principal: Principal) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(_session_key(principal.session_id))
            pipe.srem(_account_index_key(principal.account_id), principal.session_id)
            await pipe.execute()

    async def revoke_account(self, account_id: int, *, keep: str | None = None) -> int:
        """End every session of an account (role change, lock, password reset)."""
        index = _account_index_key(account_id)
        members = await self._redis.smembers(index)
        session_ids = [m.decode() if isinstance(m, bytes) else m for m in members]
        ended = [s for s in session_ids if s != keep]
        # One key per command: each session key is in its own slot under Redis Cluster.
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in ended:
                pipe.delete(_session_key(session_id))
            if ended:
                pipe.srem(index, *ended)
            await pipe.execute()
        return len(ended)
