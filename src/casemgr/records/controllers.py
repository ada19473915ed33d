"""HTTP routes of service referrals, case notes and documents."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, patch, post
from litestar.di import Provide
from litestar.params import JSONBody, QueryParameter

from casemgr.auth.principal import CASE_READERS, CASE_WRITERS, Role
from casemgr.db import scoped_transaction
from casemgr.records import service
from casemgr.records.schemas import (
    CaseNote,
    Document,
    NoteCreate,
    ServiceReferral,
    ServiceReferralCreate,
    ServiceReferralUpdate,
)
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import IdPath

KEEPERS = CASE_WRITERS | {Role.HEALTH_WORKER}
Filename = Annotated[
    str, QueryParameter(min_length=1, max_length=200, description="the document's file name")
]


class CaseRecordsController(Controller):
    path = "/cases/{case_id:int}"
    tags = ["records"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @post("/service-referrals", opt=access("case.service_referral_create", KEEPERS))
    async def refer(
        self, request: AnyRequest, case_id: IdPath, data: JSONBody[ServiceReferralCreate], ctx: Ctx
    ) -> ServiceReferral:
        """Refer the person to employment, housing, training, benefits, medical care or legal aid."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.refer(conn, ctx, case_id, data)

    @get("/service-referrals", opt=access("case.service_referrals_read", CASE_READERS, purpose=True))
    async def list_referrals(self, request: AnyRequest, case_id: IdPath, ctx: Ctx) -> list[ServiceReferral]:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.referrals(conn, ctx, case_id)

    @post("/notes", opt=access("case.note_create", KEEPERS))
    async def add_note(
        self, request: AnyRequest, case_id: IdPath, data: JSONBody[NoteCreate], ctx: Ctx
    ) -> CaseNote:
        """Add a note; notes are never edited (a correction is a new note)."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.add_note(conn, ctx, case_id, data.body)

    @get("/notes", opt=access("case.notes_read", CASE_READERS, purpose=True))
    async def list_notes(
        self,
        request: AnyRequest,
        case_id: IdPath,
        ctx: Ctx,
        before: Annotated[
            int | None, QueryParameter(ge=1, description="cursor: notes older than this id")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[CaseNote]:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.notes(conn, ctx, case_id, before, limit)

    @post(
        "/documents",
        opt=access("case.document_upload", KEEPERS),
        request_max_body_size=service.MAX_DOCUMENT_BYTES,
    )
    async def upload(self, request: AnyRequest, case_id: IdPath, filename: Filename, ctx: Ctx) -> Document:
        """Upload a PDF, JPEG or PNG of at most 5 MiB as the raw body, with its Content-Type."""
        resources = resources_of(request)
        content = await request.body()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.add_document(
                conn,
                ctx,
                resources.keyring,
                case_id,
                filename=filename,
                content_type=content_type,
                content=content,
            )

    @get("/documents", opt=access("case.documents_read", CASE_READERS, purpose=True))
    async def list_documents(self, request: AnyRequest, case_id: IdPath, ctx: Ctx) -> list[Document]:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.documents(conn, ctx, case_id)


class RecordController(Controller):
    path = "/"
    tags = ["records"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @patch("/service-referrals/{referral_id:int}", opt=access("case.service_referral_update", KEEPERS))
    async def update_referral(
        self, request: AnyRequest, referral_id: IdPath, data: JSONBody[ServiceReferralUpdate], ctx: Ctx
    ) -> ServiceReferral:
        """Move a referral along: proposed, referred, accepted, in progress, completed (or declined,
        cancelled)."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.update_referral(conn, ctx, referral_id, data)

    @get("/documents/{document_id:int}", opt=access("case.document_download", CASE_READERS, purpose=True))
    async def download(self, request: AnyRequest, document_id: IdPath, ctx: Ctx) -> Response[bytes]:
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            document, content = await service.download(conn, ctx, resources.keyring, document_id)
        return Response(
            content,
            media_type=document.content_type,
            headers={
                "Content-Disposition": f'attachment; filename="{document.id}"',
                "X-Content-Type-Options": "nosniff",
            },
        )
