"""All SQL of service referrals, case notes and documents."""

from __future__ import annotations

import asyncpg
import msgspec

from casemgr.records.schemas import CaseNote, Document, ServiceReferral

_REFERRAL_COLUMNS = """
id, case_id, service::text AS service, provider, status::text AS status, note, created_by, created_at,
updated_at
"""
_INSERT_REFERRAL = f"""
INSERT INTO service_referrals (case_id, service, provider, note, created_by)
VALUES ($1, $2::service_kind, $3, $4, $5) RETURNING {_REFERRAL_COLUMNS}
"""
_REFERRAL = f"SELECT {_REFERRAL_COLUMNS} FROM service_referrals WHERE id = $1"
_REFERRAL_CASE = "SELECT service_referral_case_id($1)"
_SET_REFERRAL_STATUS = f"""
UPDATE service_referrals
   SET status = $2::service_referral_status, note = coalesce($3, note), updated_at = now()
 WHERE id = $1 AND status = $4::service_referral_status
RETURNING {_REFERRAL_COLUMNS}
"""
_REFERRALS = f"SELECT {_REFERRAL_COLUMNS} FROM service_referrals WHERE case_id = $1 ORDER BY id"
_INSERT_NOTE = """
INSERT INTO case_notes (case_id, body, created_by) VALUES ($1, $2, $3)
RETURNING id, case_id, body, created_by, created_at
"""
_NOTES = """
SELECT id, case_id, body, created_by, created_at FROM case_notes
 WHERE case_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3
"""
_DOC_COLUMNS = (
    "id, case_id, filename, content_type, size_bytes, encode(sha256, 'hex') AS sha256, created_by, created_at"
)
_INSERT_DOC = f"""
INSERT INTO case_documents (case_id, filename, content_type, size_bytes, sha256, sealed, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_DOC_COLUMNS}
"""
_DOCS = f"SELECT {_DOC_COLUMNS} FROM case_documents WHERE case_id = $1 ORDER BY id"
_DOC_CASE = "SELECT document_case_id($1)"
_DOC_CONTENT = f"SELECT {_DOC_COLUMNS}, sealed FROM case_documents WHERE id = $1"


async def insert_referral(
    conn: asyncpg.Connection, case_id: int, service: str, provider: str, note: str | None, by: int
) -> ServiceReferral:
    record = await conn.fetchrow(_INSERT_REFERRAL, case_id, service, provider, note, by)
    return msgspec.convert(dict(record), ServiceReferral)  # type: ignore[arg-type]


async def referral_case_id(conn: asyncpg.Connection, referral_id: int) -> int | None:
    case_id: int | None = await conn.fetchval(_REFERRAL_CASE, referral_id)
    return case_id


async def referral(conn: asyncpg.Connection, referral_id: int) -> ServiceReferral | None:
    record = await conn.fetchrow(_REFERRAL, referral_id)
    return None if record is None else msgspec.convert(dict(record), ServiceReferral)


async def set_referral_status(
    conn: asyncpg.Connection, referral_id: int, status: str, note: str | None, expected: str
) -> ServiceReferral | None:
    record = await conn.fetchrow(_SET_REFERRAL_STATUS, referral_id, status, note, expected)
    return None if record is None else msgspec.convert(dict(record), ServiceReferral)


async def referrals(conn: asyncpg.Connection, case_id: int) -> list[ServiceReferral]:
    return [msgspec.convert(dict(r), ServiceReferral) for r in await conn.fetch(_REFERRALS, case_id)]


async def insert_note(conn: asyncpg.Connection, case_id: int, body: str, by: int) -> CaseNote:
    record = await conn.fetchrow(_INSERT_NOTE, case_id, body, by)
    return msgspec.convert(dict(record), CaseNote)  # type: ignore[arg-type]


async def notes(conn: asyncpg.Connection, case_id: int, before: int | None, limit: int) -> list[CaseNote]:
    return [msgspec.convert(dict(r), CaseNote) for r in await conn.fetch(_NOTES, case_id, before, limit)]


async def insert_document(
    conn: asyncpg.Connection,
    case_id: int,
    *,
    filename: str,
    content_type: str,
    size: int,
    sha256: bytes,
    sealed: bytes,
    by: int,
) -> Document:
    record = await conn.fetchrow(_INSERT_DOC, case_id, filename, content_type, size, sha256, sealed, by)
    return msgspec.convert(dict(record), Document)  # type: ignore[arg-type]


async def documents(conn: asyncpg.Connection, case_id: int) -> list[Document]:
    return [msgspec.convert(dict(r), Document) for r in await conn.fetch(_DOCS, case_id)]


async def document_case_id(conn: asyncpg.Connection, document_id: int) -> int | None:
    case_id: int | None = await conn.fetchval(_DOC_CASE, document_id)
    return case_id


async def document_with_content(conn: asyncpg.Connection, document_id: int) -> tuple[Document, bytes] | None:
    record = await conn.fetchrow(_DOC_CONTENT, document_id)
    if record is None:
        return None
    values = dict(record)
    sealed: bytes = values.pop("sealed")
    return msgspec.convert(values, Document), sealed
