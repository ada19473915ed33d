"""Wire formats of the statistics for the quantified evaluation of each office."""

from __future__ import annotations

from datetime import datetime

import msgspec

from casemgr.cases.schemas import Program


class Figure(msgspec.Struct, frozen=True, kw_only=True):
    """A number and where to find the records behind it."""

    # A count or a rate; `float` alone, as `int | float` made an OpenAPI oneOf that 0 matches twice.
    value: float | None
    # The list behind the figure: a path of this API, with its filters.
    list: str


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """One org unit (with everything below it) and one program."""

    org_unit_id: int
    org_unit_name: str
    # True for the row of the unit asked for (its whole subtree); False for a child unit.
    total: bool
    program: Program
    cases_by_status: dict[str, Figure]
    cases_by_level: dict[str, Figure]
    # Intakes done by their deadline / intakes done or already late.
    intake_on_time_rate: Figure
    intakes_counted: int
    # Contacts that took place (attended, complied) / contacts recorded, within the window.
    contact_compliance_rate: Figure
    contacts_counted: int
    overdue_tasks: Figure
    open_alerts: Figure


class Statistics(msgspec.Struct, frozen=True, kw_only=True):
    org_unit_id: int
    window_days: int
    computed_at: datetime
    rows: list[Row]
