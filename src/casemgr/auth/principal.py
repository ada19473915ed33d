"""Who is calling: the roles of the service and the authenticated principal."""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Role(StrEnum):
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    HEALTH_WORKER = "health_worker"
    POLICE_LIAISON = "police_liaison"
    AUDITOR = "auditor"
    ADMIN = "admin"
    # Background work (the due-task engine), never an account's role, never a route's.
    SYSTEM = "system"


# Roles that read case data at all (each further limited by scope and program).
CASE_READERS = frozenset({Role.OFFICER, Role.SUPERVISOR, Role.HEALTH_WORKER, Role.POLICE_LIAISON})
CASE_WRITERS = frozenset({Role.OFFICER, Role.SUPERVISOR})
# Who records what happened with a person (contacts, completed tasks): the case's writers, and
# the health workers who visit mental-illness cases.
CASE_RECORDERS = CASE_WRITERS | {Role.HEALTH_WORKER}
# Who decides a monitoring order or its renewal (the service checks the level and the requester).
ORDER_APPROVERS = frozenset({Role.SUPERVISOR})
STAFF_ROLES = frozenset(Role) - {Role.SYSTEM}
ALL_ROLES = STAFF_ROLES


class MfaState(StrEnum):
    """Where a session stands with the second factor."""

    NOT_REQUIRED = "not_required"  # switched off by setting (demo and development only)
    PASSED = "passed"
    PENDING = "pending"  # password accepted, TOTP code still to come
    ENROL = "enrol"  # password accepted, no TOTP enrolled yet: enrol before anything else


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who did something, as the audit trail records it."""

    account_id: int
    role: Role
    org_unit_id: int


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    role: Role
    org_unit_id: int
    # The ltree path of the subtree this caller may see (for an officer: their office).
    scope: str
    session_id: str
    mfa: MfaState

    @property
    def actor(self) -> Actor:
        return Actor(account_id=self.account_id, role=self.role, org_unit_id=self.org_unit_id)

    @property
    def fully_authenticated(self) -> bool:
        return self.mfa in (MfaState.PASSED, MfaState.NOT_REQUIRED)

    def sees(self, path: str) -> bool:
        """Whether an org-tree path lies inside this caller's scope (ltree ``<@``)."""
        return path == self.scope or path.startswith(self.scope + ".")
