"""Keyset pagination: fetch one row more than asked, to know whether a next page exists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def cut_page(rows: Sequence[T], limit: int, key: Callable[[T], int]) -> tuple[list[T], int | None]:
    """The first ``limit`` rows and the cursor of the next page (None on the last page).

    ``rows`` is what a query with ``LIMIT limit + 1`` returned.
    """
    page = list(rows[:limit])
    return page, (key(page[-1]) if len(rows) > limit and page else None)
