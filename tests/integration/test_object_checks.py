"""The second layer on its own: the services' object checks, with row security out of play.

The services run here on the owner's connection, a superuser's, which row-level security
does not filter; whatever is refused is refused by the application's own checks.
"""

from __future__ import annotations

import asyncpg
import pytest

from casemgr.accounts import service as accounts
from casemgr.auth.principal import MfaState, Principal
from casemgr.cases import service as cases
from casemgr.cases.schemas import CaseUpdate
from casemgr.context import RequestContext
from casemgr.errors import Forbidden
from casemgr.resources import Resources
from tests.conftest import World, scope_for


def ctx_for(world: World, name: str) -> RequestContext:
    account = world.accounts[name]
    principal = Principal(
        account_id=account.id,
        role=account.role,
        org_unit_id=account.unit.id,
        scope=scope_for(account, world),
        session_id="test",
        mfa=MfaState.PASSED,
    )
    return RequestContext(request_id="object-checks", principal=principal, purpose="test")


@pytest.mark.parametrize(
    ("caller", "case"),
    [
        ("off1", "cc_o3"),
        ("off1", "drug_o2"),
        ("sup_d2", "cc_o1"),
        ("health_d1", "cc_o1"),
        ("police_d1", "smi_o1"),
        ("admin", "cc_o1"),
        ("auditor", "cc_o1"),
    ],
)
async def test_reads_outside_the_callers_reach_are_refused_without_row_security(
    owner: asyncpg.Connection, world: World, caller: str, case: str, resources: Resources
) -> None:
    async with owner.transaction():
        with pytest.raises(Forbidden):
            await cases.read(owner, ctx_for(world, caller), resources.keyring, world.cases[case])


async def test_an_officer_cannot_change_a_colleagues_case_without_row_security(
    owner: asyncpg.Connection, world: World, resources: Resources
) -> None:
    async with owner.transaction():
        with pytest.raises(Forbidden) as denied:
            await cases.update(
                owner,
                ctx_for(world, "off1"),
                resources.keyring,
                world.cases["smi_o1"],
                CaseUpdate(shared_with_police=True),
            )
    assert denied.value.reason == "not_own_caseload"


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("health_d1", {"smi_o1"}),
        ("police_d1", {"cc_o1"}),
        ("off1", {"cc_o1", "smi_o1"}),
        ("sup_d2", {"cc_o3"}),
    ],
)
async def test_lists_hold_only_what_the_caller_may_read_without_row_security(
    owner: asyncpg.Connection, world: World, caller: str, expected: set[str]
) -> None:
    async with owner.transaction():
        page = await cases.list_cases(
            owner, ctx_for(world, caller), program=None, mine=False, after=None, limit=100
        )
    assert {item.id for item in page.items} == {world.cases[name] for name in expected}


async def test_an_admin_reaches_no_account_outside_their_subtree_without_row_security(
    owner: asyncpg.Connection, world: World
) -> None:
    async with owner.transaction():
        with pytest.raises(Forbidden):
            await accounts.get(owner, ctx_for(world, "admin_d1"), world.accounts["off3"].id)
