"""Rules of assistance and records: service referrals with their status, append-only case
notes, and documents of limited size and type, sealed at rest."""

from __future__ import annotations

import hashlib

import asyncpg

from casemgr import audit
from casemgr.cases.access import may_read, may_write_detail
from casemgr.cases.service import authorize_case
from casemgr.context import RequestContext
from casemgr.crypto import Keyring
from casemgr.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed
from casemgr.records import repository
from casemgr.records.schemas import (
    NEXT_STATUS,
    CaseNote,
    Document,
    ServiceReferral,
    ServiceReferralCreate,
    ServiceReferralUpdate,
)

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
# The first bytes each accepted type starts with: the declared type must match the content.
_SIGNATURES = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}


async def _case(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int | None, *, write: bool, what: str = "case"
) -> int:
    if case_id is None:
        raise NotFound(f"{what} does not exist")
    # Whoever follows a case up (its writers, and health workers on mental-illness cases)
    # keeps its records.
    if write:
        await authorize_case(conn, ctx, case_id, may_write_detail, "add to the records of")
    else:
        await authorize_case(conn, ctx, case_id, may_read, "read the records of")
    return case_id


async def refer(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int, data: ServiceReferralCreate
) -> ServiceReferral:
    await _case(conn, ctx, case_id, write=True)
    made = await repository.insert_referral(
        conn, case_id, data.service.value, data.provider, data.note, ctx.caller.account_id
    )
    await audit.record(
        conn, ctx, "case.service_referral_create", object_type="service_referral", object_id=made.id
    )
    return made


async def update_referral(
    conn: asyncpg.Connection, ctx: RequestContext, referral_id: int, data: ServiceReferralUpdate
) -> ServiceReferral:
    await _case(
        conn,
        ctx,
        await repository.referral_case_id(conn, referral_id),
        write=True,
        what=f"service referral {referral_id}",
    )
    current = await repository.referral(conn, referral_id)
    if current is None:
        raise Forbidden(
            "you may not change this referral",
            reason="denied_by_row_policy",
            object_type="service_referral",
            object_id=referral_id,
        )
    if data.status not in NEXT_STATUS[current.status]:
        allowed = ", ".join(sorted(NEXT_STATUS[current.status])) or "none: it is final"
        raise Conflict(f"a {current.status} referral cannot become {data.status} (allowed: {allowed})")
    updated = await repository.set_referral_status(
        conn, referral_id, data.status.value, data.note, current.status.value
    )
    if updated is None:
        raise Conflict("the referral changed meanwhile; read it again")
    await audit.record(
        conn, ctx, "case.service_referral_update", object_type="service_referral", object_id=referral_id
    )
    return updated


async def referrals(conn: asyncpg.Connection, ctx: RequestContext, case_id: int) -> list[ServiceReferral]:
    await _case(conn, ctx, case_id, write=False)
    found = await repository.referrals(conn, case_id)
    await audit.record(conn, ctx, "case.service_referrals_read", object_type="case", object_id=case_id)
    return found


async def add_note(conn: asyncpg.Connection, ctx: RequestContext, case_id: int, body: str) -> CaseNote:
    await _case(conn, ctx, case_id, write=True)
    note = await repository.insert_note(conn, case_id, body, ctx.caller.account_id)
    await audit.record(conn, ctx, "case.note_create", object_type="case_note", object_id=note.id)
    return note


async def notes(
    conn: asyncpg.Connection, ctx: RequestContext, case_id: int, before: int | None, limit: int
) -> list[CaseNote]:
    await _case(conn, ctx, case_id, write=False)
    found = await repository.notes(conn, case_id, before, limit)
    await audit.record(conn, ctx, "case.notes_read", object_type="case", object_id=case_id)
    return found


def _aad(case_id: int, sha256: bytes) -> bytes:
    return f"case_documents:{case_id}:{sha256.hex()}".encode()


def check_document(filename: str, content_type: str, content: bytes) -> None:
    if not content:
        raise BadRequest("the document is empty")
    if len(content) > MAX_DOCUMENT_BYTES:
        raise ValidationFailed(f"documents hold at most {MAX_DOCUMENT_BYTES} bytes", field="body")
    signatures = _SIGNATURES.get(content_type)
    if signatures is None:
        raise ValidationFailed(f"accepted types: {', '.join(sorted(_SIGNATURES))}", field="content-type")
    if not content.startswith(signatures):
        raise ValidationFailed(f"the content is not a {content_type} file", field="content-type")
    if not 1 <= len(filename) <= 200 or any(c in filename for c in "/\\\x00") or not filename.isprintable():
        raise ValidationFailed("a plain file name of 1 to 200 characters, without slashes", field="filename")


async def add_document(
    conn: asyncpg.Connection,
    ctx: RequestContext,
    keyring: Keyring,
    case_id: int,
    *,
    filename: str,
    content_type: str,
    content: bytes,
) -> Document:
    await _case(conn, ctx, case_id, write=True)
    check_document(filename, content_type, content)
    digest = hashlib.sha256(content).digest()
    document = await repository.insert_document(
        conn,
        case_id,
        filename=filename,
        content_type=content_type,
        size=len(content),
        sha256=digest,
        sealed=keyring.seal(content, _aad(case_id, digest)),
        by=ctx.caller.account_id,
    )
    await audit.record(conn, ctx, "case.document_upload", object_type="case_document", object_id=document.id)
    return document


async def documents(conn: asyncpg.Connection, ctx: RequestContext, case_id: int) -> list[Document]:
    await _case(conn, ctx, case_id, write=False)
    found = await repository.documents(conn, case_id)
    await audit.record(conn, ctx, "case.documents_read", object_type="case", object_id=case_id)
    return found


async def download(
    conn: asyncpg.Connection, ctx: RequestContext, keyring: Keyring, document_id: int
) -> tuple[Document, bytes]:
    case_id = await _case(
        conn,
        ctx,
        await repository.document_case_id(conn, document_id),
        write=False,
        what=f"document {document_id}",
    )
    found = await repository.document_with_content(conn, document_id)
    if found is None:
        raise Forbidden(
            "you may not read this document",
            reason="denied_by_row_policy",
            object_type="case_document",
            object_id=document_id,
        )
    document, sealed = found
    content = keyring.open(sealed, _aad(case_id, bytes.fromhex(document.sha256)))
    await audit.record(
        conn, ctx, "case.document_download", object_type="case_document", object_id=document_id
    )
    return document, content
