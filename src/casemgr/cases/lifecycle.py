"""The case lifecycle, common to all programs:

    referred ──> pending_intake ──> active <──> suspended
        │              │              │            │
        └──────────────┴──────> closed <───────────┘   (with a closure reason)

A case can be closed from any open state; a closed case stays closed (a new case is
opened instead). Every transition is recorded as a case event with who and why.
"""

from __future__ import annotations

from casemgr.cases.schemas import CaseStatus, ClosureReason
from casemgr.errors import Conflict, ValidationFailed

ALLOWED: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.REFERRED: frozenset({CaseStatus.PENDING_INTAKE, CaseStatus.ACTIVE, CaseStatus.CLOSED}),
    CaseStatus.PENDING_INTAKE: frozenset({CaseStatus.ACTIVE, CaseStatus.CLOSED}),
    CaseStatus.ACTIVE: frozenset({CaseStatus.SUSPENDED, CaseStatus.CLOSED}),
    CaseStatus.SUSPENDED: frozenset({CaseStatus.ACTIVE, CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset(),
}
# Transfers close a case through their own workflow, never by hand.
_WORKFLOW_ONLY = frozenset({ClosureReason.TRANSFERRED_OUT})


def check_transition(current: CaseStatus, target: CaseStatus, reason: ClosureReason | None) -> None:
    """Refuse what the lifecycle does not allow: 409 for the move, 422 for its reason."""
    if target not in ALLOWED[current]:
        allowed = ", ".join(sorted(ALLOWED[current])) or "none: a closed case stays closed"
        raise Conflict(f"a {current} case cannot become {target} (allowed: {allowed})")
    if target is CaseStatus.CLOSED and reason is None:
        raise ValidationFailed("closing a case needs a closure_reason", field="closure_reason")
    if target is not CaseStatus.CLOSED and reason is not None:
        raise ValidationFailed("only a closure takes a closure_reason", field="closure_reason")
    if reason in _WORKFLOW_ONLY:
        raise ValidationFailed(
            "a case is transferred out through a transfer, not closed by hand", field="closure_reason"
        )
