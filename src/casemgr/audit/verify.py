"""Recompute the audit hash chain independently of the database's own functions.

Each row's hash is ``sha256(prev_hash || canonical(row))``, where the canonical form is the
concatenation of the row's fields, each as ``<utf-8 length>:<text>`` or ``~`` for NULL. The
SQL function ``audit_canonical`` builds the same string; this module must agree with it
byte for byte (a property test checks that). Ids have no gaps, so a deleted row shows as a
missing id, and the head row shows whether rows were cut off the end.
"""

from __future__ import annotations

import hashlib
from datetime import UTC

import asyncpg
import msgspec

from casemgr.audit import repository
from casemgr.audit.repository import AuditRow

GENESIS_HASH = bytes(32)
_PAGE = 5000


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    rows_checked: int
    # The id of the first row whose link does not hold, and what is wrong with it.
    first_broken_id: int | None = None
    problem: str | None = None
    # Publish or write down the head hash: a later verify that still reaches it shows that
    # nothing before it was rewritten, even by someone holding the database owner's keys.
    head_hash: str | None = None


def _field(value: object) -> str:
    if value is None:
        return "~"
    text = str(value)
    return f"{len(text.encode())}:{text}"


def canonical(row: AuditRow) -> bytes:
    at = row.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = (
        row.id,
        at,
        row.actor_id,
        row.actor_role,
        row.actor_org_unit_id,
        row.action,
        row.object_type,
        row.object_id,
        row.purpose,
        row.outcome,
        row.reason,
        row.request_id,
    )
    return "".join(_field(f) for f in fields).encode()


def row_hash(prev_hash: bytes, row: AuditRow) -> bytes:
    return hashlib.sha256(prev_hash + canonical(row)).digest()


async def verify_chain(conn: asyncpg.Connection) -> ChainReport:
    """Walk the whole chain in id order; stop at the first broken link.

    Needs a connection that sees every row (the owner's, as ``casemgr audit verify`` uses).
    """
    expected_id = 1
    prev = GENESIS_HASH
    checked = 0
    while True:
        page = await repository.chain_page(conn, expected_id - 1, _PAGE)
        for row in page:
            if row.id != expected_id:
                return ChainReport(
                    ok=False,
                    rows_checked=checked,
                    first_broken_id=expected_id,
                    problem=f"row {expected_id} is missing",
                )
            if row.prev_hash != prev:
                return ChainReport(
                    ok=False,
                    rows_checked=checked,
                    first_broken_id=row.id,
                    problem="prev_hash does not match the previous row's hash",
                )
            if row_hash(prev, row) != row.hash:
                return ChainReport(
                    ok=False,
                    rows_checked=checked,
                    first_broken_id=row.id,
                    problem="row content does not match its hash",
                )
            prev = row.hash
            expected_id += 1
            checked += 1
        if len(page) < _PAGE:
            break
    last_id, last_hash = await repository.head(conn)
    if last_id != checked:
        return ChainReport(
            ok=False,
            rows_checked=checked,
            first_broken_id=checked + 1,
            problem=f"the chain head records {last_id} rows; rows after {checked} are missing",
        )
    if last_hash != prev:
        return ChainReport(
            ok=False,
            rows_checked=checked,
            first_broken_id=checked,
            problem="the last row does not match the hash the chain head recorded",
        )
    return ChainReport(ok=True, rows_checked=checked, head_hash=prev.hex())
