"""Wire formats of the auth routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from casemgr.auth.principal import MfaState, Role
from casemgr.wire import line

Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class LoginRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, line(64)]
    password: Password


class TotpCode(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$", description="the 6-digit code")]


class PasswordChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class SessionOut(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    expires_at: datetime
    role: Role
    # "pending": POST /auth/totp/verify next; "enrol": POST /auth/totp/enrol, then verify.
    mfa: MfaState


class TotpEnrolmentOut(msgspec.Struct, frozen=True, kw_only=True):
    secret: str
    otpauth_uri: str


class MeOut(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    role: Role
    org_unit_id: int
    scope: str
    mfa: MfaState
