"""The statistics of an org unit: per child unit and program, counts by status and level,
on-time intake rate, contact compliance rate, overdue tasks and open alerts.

Every figure is computed from the records, counts only what the caller may read (the same
role rules as the lists, under the row policies), and names the list behind it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from urllib.parse import urlencode

import asyncpg

from casemgr import audit
from casemgr.auth.principal import Role
from casemgr.cases.access import list_filter
from casemgr.cases.schemas import CaseStatus, Program, SupervisionLevel
from casemgr.context import RequestContext
from casemgr.orgunits.service import unit_in_scope
from casemgr.statistics import repository
from casemgr.statistics.schemas import Figure, Row, Statistics


def _link(path: str, **filters: object) -> str:
    return f"{path}?{urlencode({k: v for k, v in filters.items() if v is not None})}"


def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, 4)


async def compute(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    *,
    org_unit_id: int | None,
    program: Program | None,
    window_days: int,
    now: datetime,
) -> Statistics:
    caller = ctx.caller
    rules = list_filter(caller, program, object_type="statistics")
    # By default the unit at the top of the caller's scope (an officer's office); paths are
    # built from ids, so its last label names it ("n17").
    unit_id = org_unit_id or int(caller.scope.rsplit(".", 1)[-1].removeprefix("n"))
    await unit_in_scope(conn, ctx, unit_id, field="org_unit_id")
    wanted = rules.program.value if rules.program else None
    shared = rules.shared_with_police_only

    counts: dict[tuple[int, str], dict[str, dict[str, int]]] = defaultdict(
        lambda: {"status": defaultdict(int), "level": defaultdict(int)}
    )
    for r in await repository.case_counts(conn, unit_id, wanted, shared):
        counts[(r["group_id"], r["program"])]["status"][r["status"]] += r["n"]
        counts[(r["group_id"], r["program"])]["level"][r["level"]] += r["n"]
    intakes = await repository.intakes(conn, unit_id, wanted, shared, now)
    contacts = await repository.contacts(conn, unit_id, wanted, shared, now, window_days)
    overdue = await repository.overdue_tasks(conn, unit_id, wanted, shared)
    # As the alert list: referral alerts without a case belong to those who take people on.
    alerts = await repository.open_alerts(
        conn, unit_id, wanted, shared, unattached=caller.role in (Role.OFFICER, Role.SUPERVISOR)
    )

    programs = [rules.program] if rules.program else list(Program)
    rows: list[Row] = []
    for group_id, name in await repository.units(conn, unit_id):
        for prog in programs:
            key = (group_id, prog.value)
            cases_link = {"org_unit_id": group_id, "program": prog.value}
            on_time, intake_count = intakes.get(key, (0, 0))
            achieved, contact_count = contacts.get(key, (0, 0))
            rows.append(
                Row(
                    org_unit_id=group_id,
                    org_unit_name=name,
                    total=group_id == unit_id,
                    program=prog,
                    cases_by_status={
                        s.value: Figure(
                            value=counts[key]["status"].get(s.value, 0),
                            list=_link("/cases", **cases_link, status=s.value),
                        )
                        for s in CaseStatus
                    },
                    cases_by_level={
                        lv.value: Figure(
                            value=counts[key]["level"].get(lv.value, 0),
                            list=_link("/cases", **cases_link, level=lv.value),
                        )
                        for lv in SupervisionLevel
                    },
                    intake_on_time_rate=Figure(
                        value=_rate(on_time, intake_count),
                        list=_link("/tasks", **cases_link, kind="intake_due", status="done"),
                    ),
                    intakes_counted=intake_count,
                    contact_compliance_rate=Figure(
                        value=_rate(achieved, contact_count),
                        list=_link("/cases", **cases_link, status="active"),
                    ),
                    contacts_counted=contact_count,
                    overdue_tasks=Figure(
                        value=overdue.get(key, 0), list=_link("/tasks", **cases_link, status="overdue")
                    ),
                    open_alerts=Figure(value=alerts.get(key, 0), list=_link("/alerts", **cases_link)),
                )
            )
    await audit.record(conn, ctx, "statistics.read", object_type="org_unit", object_id=unit_id)
    return Statistics(org_unit_id=unit_id, window_days=window_days, computed_at=now, rows=rows)
