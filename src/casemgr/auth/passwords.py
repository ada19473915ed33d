"""Password hashing with argon2id, run off the event loop (a hash costs tens of ms)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from casemgr.errors import ValidationFailed

MIN_LENGTH = 12
MAX_LENGTH = 256


class Passwords:
    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        # Verified against when the username is unknown, so that an unknown name costs
        # as much time as a wrong password and does not reveal which names exist.
        self._decoy = self._hasher.hash("decoy password that never matches")

    @staticmethod
    def check_policy(password: str, field: str = "password") -> None:
        if len(password) < MIN_LENGTH:
            raise ValidationFailed(f"{field} must have at least {MIN_LENGTH} characters", field=field)
        if len(password) > MAX_LENGTH:
            raise ValidationFailed(f"{field} must have at most {MAX_LENGTH} characters", field=field)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, stored_hash or self._decoy, password)

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
