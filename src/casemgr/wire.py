"""Constrained types shared by the wire formats of every area.

Ids are positive and fit PostgreSQL's bigint; text never carries control characters
(PostgreSQL cannot store NUL, and the others have no place in a name or a code). A value
outside these bounds is a 4xx naming its field, never a database error.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.params import PathParameter, QueryParameter

MAX_ID = 2**63 - 1
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
IdPath = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
# A keyset cursor: the last id of the previous page.
Cursor = Annotated[int | None, QueryParameter(ge=0, le=MAX_ID, description="next page cursor")]


def line(max_length: int, min_length: int = 1) -> msgspec.Meta:
    """``Annotated[str, ...]`` metadata for one line of text of bounded length."""
    return msgspec.Meta(min_length=min_length, max_length=max_length, pattern=_ONE_LINE)
