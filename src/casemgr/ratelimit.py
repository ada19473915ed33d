"""Rate limits shared by every worker and every process: counters in Redis.

Each limit is a fixed window per subject (an account, a source address): the first hit of a
window creates its counter with the window's expiry, and one script call increments it and
reads what is left of the window, atomically. Every counter is its own hash tag, so a Redis
Cluster serves it from one slot. A check of several limits is one pipelined round trip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from casemgr.config import Settings
from casemgr.errors import TooManyRequests
from casemgr.redis_client import RedisClient

# KEYS[1] the counter; ARGV[1] the window in ms. Returns {hits in this window, ms left of it}.
_HIT = """
local hits = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {hits, left}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `per_window` hits of one subject in `window_s` seconds; 0 means no limit."""

    name: str
    per_window: int
    window_s: int = 60


NO_LIMIT = Limit("none", 0)


@dataclass(slots=True)
class RateLimiter:
    redis: RedisClient
    namespace: str = "casemgr"

    def key(self, limit: Limit, subject: str) -> str:
        return f"{self.namespace}:rl:{{{limit.name}:{subject}}}"

    async def hit(self, *checks: tuple[Limit, str]) -> None:
        """Count one hit of each (limit, subject); raise TooManyRequests, with the longest wait,
        if any of them is over its limit. A limit of 0 is not counted."""
        active = [(limit, subject) for limit, subject in checks if limit.per_window > 0]
        if not active:
            return
        # EVAL, not EVALSHA: the script is short, Redis keeps it compiled, and a pipeline to a
        # cluster needs no script loading on each node.
        pipe = self.redis.pipeline(transaction=False)
        for limit, subject in active:
            pipe.eval(_HIT, 1, self.key(limit, subject), limit.window_s * 1000)
        replies = await pipe.execute()
        over = [
            (limit, int(left))
            for (limit, _), (hits, left) in zip(active, replies, strict=True)
            if int(hits) > limit.per_window
        ]
        if over:
            wait_ms = max(left for _, left in over)
            names = ", ".join(f"{limit.per_window} {limit.name} per {limit.window_s} s" for limit, _ in over)
            raise TooManyRequests(
                f"rate limit reached ({names}); wait before sending again",
                retry_after_s=math.ceil(wait_ms / 1000),
                reason="rate_limited",
            )


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """The officer-facing service's limits: every request per source address and per account,
    and login attempts per source address (the lockout guards each account; this, the guessing
    of many accounts from one place)."""

    per_address: Limit
    per_account: Limit
    logins_per_address: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiLimits:
        return cls(
            per_address=Limit("requests-per-address", settings.rate_limit_per_address_per_minute),
            per_account=Limit("requests-per-account", settings.rate_limit_per_account_per_minute),
            logins_per_address=Limit("logins-per-address", settings.rate_limit_logins_per_address_per_minute),
        )
