"""Wire formats of the account routes (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from casemgr.auth.principal import Role
from casemgr.wire import Id, line

Username = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{2,63}$", description="lower-case letters, digits, . _ -")
]
DisplayName = Annotated[str, line(200)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    username: str
    display_name: str
    role: Role
    org_unit_id: int
    totp_enrolled: bool
    locked_at: datetime | None
    disabled_at: datetime | None
    created_at: datetime


class AccountCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    username: Username
    display_name: DisplayName
    role: Role
    org_unit_id: Id
    password: Password


class AccountUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    display_name: DisplayName | msgspec.UnsetType = msgspec.UNSET
    role: Role | msgspec.UnsetType = msgspec.UNSET
    org_unit_id: Id | msgspec.UnsetType = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET


class PasswordReset(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    new_password: Password


class AccountPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Account]
    # Pass as ?after= to get the next page; null on the last page.
    next_after: int | None
