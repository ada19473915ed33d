"""Who may read and who may write a case: the object-level rules, as pure functions.

They decide on a CaseLocation (where the case sits, who holds it, what it is) before any
personal data is read; the row-level policies of migrations 0005 and 0007 state the same
rules again.
"""

from __future__ import annotations

from typing import NamedTuple

from casemgr.auth.principal import Principal, Role
from casemgr.cases.schemas import CaseLocation, Program
from casemgr.errors import Forbidden


def may_read(caller: Principal, loc: CaseLocation) -> str | None:
    """None if the caller may read the case, else the reason code of the denial."""
    if not caller.sees(loc.org_path):
        return "out_of_scope"
    if caller.role in (Role.OFFICER, Role.SUPERVISOR):
        return None
    if caller.role is Role.HEALTH_WORKER:
        return None if loc.program is Program.SEVERE_MENTAL_ILLNESS else "program_not_cleared"
    if caller.role is Role.POLICE_LIAISON:
        return None if loc.shared_with_police else "not_shared_with_police"
    return "role_reads_no_case_data"


def may_write(caller: Principal, loc: CaseLocation) -> str | None:
    """An officer writes their own caseload; a supervisor writes inside their subtree."""
    if not caller.sees(loc.org_path):
        return "out_of_scope"
    if caller.role is Role.SUPERVISOR:
        return None
    if caller.role is Role.OFFICER:
        return None if loc.officer_id == caller.account_id else "not_own_caseload"
    return "role_writes_no_case_data"


def may_write_detail(caller: Principal, loc: CaseLocation) -> str | None:
    """The program detail: as any write, and health workers for mental-illness cases."""
    if caller.role is Role.HEALTH_WORKER and caller.sees(loc.org_path):
        return None if loc.program is Program.SEVERE_MENTAL_ILLNESS else "program_not_cleared"
    return may_write(caller, loc)


class ListFilter(NamedTuple):
    """may_read as filters for lists: the program a role is held to, and police sharing."""

    program: Program | None
    shared_with_police_only: bool


def list_filter(caller: Principal, program: Program | None, *, object_type: str) -> ListFilter:
    """The filters a list must apply for this caller; a program they may not read is a 403."""
    if caller.role is Role.HEALTH_WORKER:
        if program not in (None, Program.SEVERE_MENTAL_ILLNESS):
            raise Forbidden(
                "health workers read severe-mental-illness cases only",
                reason="program_not_cleared",
                object_type=object_type,
            )
        program = Program.SEVERE_MENTAL_ILLNESS
    return ListFilter(program=program, shared_with_police_only=caller.role is Role.POLICE_LIAISON)
