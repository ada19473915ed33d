"""The third layer: PostgreSQL row-level security, proved without the application's checks.

These tests talk to the database as casemgr_app, the role the service connects as, and set
the scope by hand, the way db.scoped_transaction does; no service function runs.
"""

from __future__ import annotations

import asyncpg
import pytest

from casemgr.cases import repository as cases_repository
from casemgr.config import Settings
from tests.conftest import World

PERSONAL_DATA_TABLES = (
    "persons",
    "cases",
    "accounts",
    "audit_log",
    "monitoring_orders",
    "monitoring_renewals",
    "devices",
    "device_assignments",
    "zones",
    "pings",
)

SET_SCOPE = """
SELECT set_config('app.account_id', $1, true), set_config('app.role', $2, true),
       set_config('app.scope', $3, true)
"""


@pytest.fixture
async def app_conn(settings: Settings):  # type: ignore[no-untyped-def]
    conn = await asyncpg.connect(settings.app_database_url)
    yield conn
    await conn.close()


async def test_the_application_role_owns_nothing_and_cannot_bypass_row_security(
    owner: asyncpg.Connection,
) -> None:
    role = await owner.fetchrow(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
        "WHERE rolname = 'casemgr_app'"
    )
    assert role is not None
    assert not any(role.values())
    owned = await owner.fetchval(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        "WHERE r.rolname = 'casemgr_app'"
    )
    assert owned == 0


# Tables the application may read that hold no personal data: the org tree, configuration,
# and the queue of device ids whose configuration tracking must learn.
NOT_PERSONAL = {
    "org_units",
    "contact_plan",
    "assessment_plan",
    "intake_deadlines",
    "monitoring_reasons",
    "tracking_outbox",
    "alert_escalation_limits",
    "alert_change_head",
}


async def test_every_table_the_application_reads_forces_row_level_security_unless_it_holds_no_personal_data(
    owner: asyncpg.Connection,
) -> None:
    readable = await owner.fetch(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND has_table_privilege('casemgr_app', c.oid, 'SELECT')"
    )
    names = {r["relname"] for r in readable}
    assert names >= set(PERSONAL_DATA_TABLES) | NOT_PERSONAL
    unprotected = sorted(
        r["relname"]
        for r in readable
        if r["relname"] not in NOT_PERSONAL and not (r["relrowsecurity"] and r["relforcerowsecurity"])
    )
    assert unprotected == []


async def test_another_districts_scope_sees_no_rows_even_when_the_application_check_is_skipped(
    app_conn: asyncpg.Connection, world: World
) -> None:
    sup_d2 = world.accounts["sup_d2"]
    case_in_d1 = world.cases["cc_o1"]
    async with app_conn.transaction():
        await app_conn.execute(SET_SCOPE, str(sup_d2.id), "supervisor", world.units["d2"].path)
        # Straight SQL, and the repository functions the services use, without the services.
        assert await app_conn.fetch("SELECT * FROM cases WHERE id = $1", case_in_d1) == []
        assert await app_conn.fetch("SELECT * FROM persons WHERE id = $1", world.persons["cc_o1"]) == []
        assert await app_conn.fetch("SELECT * FROM accounts WHERE id = $1", world.accounts["off1"].id) == []
        assert await cases_repository.get(app_conn, case_in_d1) is None
        # Even a list asked for district d1's subtree returns nothing from district d1.
        listed = await cases_repository.list_under(
            app_conn,
            path=world.units["d1"].path,
            program=None,
            officer_id=None,
            after=None,
            limit=100,
        )
        assert listed == []
        # Monitoring: another district's order, zones, renewals, device and assignment.
        order_in_d1 = world.orders["cc_o1"]
        for sql, value in (
            ("SELECT * FROM monitoring_orders WHERE id = $1", order_in_d1),
            ("SELECT * FROM zones WHERE order_id = $1", order_in_d1),
            ("SELECT * FROM monitoring_renewals WHERE order_id = $1", order_in_d1),
            ("SELECT * FROM device_assignments WHERE order_id = $1", order_in_d1),
            ("SELECT * FROM devices WHERE id = $1", world.devices["cc_o1"]),
        ):
            assert await app_conn.fetch(sql, value) == [], sql
        assert await app_conn.fetch("SELECT * FROM zones WHERE order_id = $1", world.orders["cc_o3"]) != []
        # The same supervisor does see their own district's case: the policy is not just "no".
        assert await cases_repository.get(app_conn, world.cases["cc_o3"]) is not None


async def test_a_transaction_without_a_scope_sees_no_personal_data(
    app_conn: asyncpg.Connection, world: World
) -> None:
    for table in PERSONAL_DATA_TABLES:
        assert await app_conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_an_officer_cannot_update_a_colleagues_case_through_sql(
    app_conn: asyncpg.Connection, world: World, owner: asyncpg.Connection
) -> None:
    off1 = world.accounts["off1"]
    colleague_case = world.cases["smi_o1"]  # same office, held by off1c
    async with app_conn.transaction():
        await app_conn.execute(SET_SCOPE, str(off1.id), "officer", world.units["o1"].path)
        # Readable (the office's caseload) ...
        assert await app_conn.fetchval("SELECT count(*) FROM cases WHERE id = $1", colleague_case) == 1
        # ... but not writable.
        result = await app_conn.execute(
            "UPDATE cases SET shared_with_police = true WHERE id = $1", colleague_case
        )
        assert result == "UPDATE 0"
    assert not await owner.fetchval("SELECT shared_with_police FROM cases WHERE id = $1", colleague_case)


async def test_health_workers_see_only_mental_illness_cases_and_police_only_shared_ones(
    app_conn: asyncpg.Connection, world: World
) -> None:
    d1 = world.units["d1"].path
    async with app_conn.transaction():
        await app_conn.execute(SET_SCOPE, str(world.accounts["health_d1"].id), "health_worker", d1)
        programs = {r["program"] for r in await app_conn.fetch("SELECT program::text FROM cases")}
        assert programs == {"severe_mental_illness"}
    async with app_conn.transaction():
        await app_conn.execute(SET_SCOPE, str(world.accounts["police_d1"].id), "police_liaison", d1)
        ids = [r["id"] for r in await app_conn.fetch("SELECT id FROM cases")]
        assert ids == [world.cases["cc_o1"]]


async def test_admins_and_auditors_read_no_case_data_even_at_the_top_of_the_tree(
    app_conn: asyncpg.Connection, world: World
) -> None:
    for name in ("admin", "auditor"):
        account = world.accounts[name]
        async with app_conn.transaction():
            await app_conn.execute(SET_SCOPE, str(account.id), account.role.value, world.units["city"].path)
            assert await app_conn.fetchval("SELECT count(*) FROM cases") == 0
            assert await app_conn.fetchval("SELECT count(*) FROM persons") == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET purpose = 'rewritten'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "UPDATE audit_head SET last_id = 0",
    ],
)
async def test_the_application_role_cannot_rewrite_the_audit_trail(
    app_conn: asyncpg.Connection, statement: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
        await app_conn.execute(statement)
    assert caught.value.sqlstate == "42501"
