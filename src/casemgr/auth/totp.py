"""TOTP (RFC 6238) second factor: 6 digits, 30-second steps, one step of clock drift."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

STEP_SECONDS = 30
_DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, account_name: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=issuer)


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code equals ``code`` (now, or one step either side), else None.

    The caller must accept each step only once (see auth_use_totp_step) so that a code
    seen over someone's shoulder cannot be replayed.
    """
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found: int | None = None
    for offset in range(-_DRIFT_STEPS, _DRIFT_STEPS + 1):
        # Compare every candidate, in constant time, whatever matched before.
        if hmac.compare_digest(totp.generate_otp(current + offset), code):
            found = current + offset
    return found
