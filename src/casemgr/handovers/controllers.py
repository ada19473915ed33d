"""HTTP routes of handover: referrals, transfers, and the receiving office's decisions."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.params import FromQuery, JSONBody, QueryParameter

from casemgr.auth.principal import ALL_ROLES, CASE_WRITERS
from casemgr.db import scoped_transaction
from casemgr.handovers import repository, service
from casemgr.handovers.schemas import (
    Acceptance,
    Handover,
    HandoverPage,
    HandoverStatus,
    IntakeDeadline,
    ReferralCreate,
    Rejection,
    TransferCreate,
)
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import Cursor, IdPath


class HandoverController(Controller):
    path = "/handovers"
    tags = ["handover"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @post("/referrals", opt=access("handover.refer", CASE_WRITERS))
    async def refer(self, request: AnyRequest, data: JSONBody[ReferralCreate], ctx: Ctx) -> Handover:
        """Record a person sent by a prison, court or hospital, with the intake deadline."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.refer(conn, ctx, resources.keyring, data, resources.clock.now())

    @get("/", opt=access("handover.list", CASE_WRITERS))
    async def list_handovers(
        self,
        request: AnyRequest,
        ctx: Ctx,
        direction: FromQuery[Literal["incoming", "outgoing"]] = "incoming",
        status: FromQuery[HandoverStatus | None] = None,
        after: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> HandoverPage:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.list_handovers(
                conn, ctx, incoming=direction == "incoming", status=status, after=after, limit=limit
            )

    @get("/intake-deadlines", opt=access("handover.deadlines", ALL_ROLES))
    async def intake_deadlines(self, request: AnyRequest, ctx: Ctx) -> list[IntakeDeadline]:
        """How many days after which event each program's intake is due."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await repository.deadlines(conn)

    @get("/{handover_id:int}", opt=access("handover.read", CASE_WRITERS, purpose=True))
    async def get_handover(self, request: AnyRequest, handover_id: IdPath, ctx: Ctx) -> Handover:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.read(conn, ctx, handover_id)

    @post("/{handover_id:int}/accept", status_code=200, opt=access("handover.accept", CASE_WRITERS))
    async def accept(
        self, request: AnyRequest, handover_id: IdPath, data: JSONBody[Acceptance], ctx: Ctx
    ) -> Handover:
        """Take the person on: a referral becomes a case pending intake, a transfer moves the case."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.accept(
                conn, ctx, resources.keyring, handover_id, data, resources.clock.now()
            )

    @post("/{handover_id:int}/reject", status_code=200, opt=access("handover.reject", CASE_WRITERS))
    async def reject(
        self, request: AnyRequest, handover_id: IdPath, data: JSONBody[Rejection], ctx: Ctx
    ) -> Handover:
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.reject(conn, ctx, handover_id, data, resources.clock.now())


class TransferController(Controller):
    path = "/cases/{case_id:int}/transfer"
    tags = ["handover"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @post("/", opt=access("handover.transfer", CASE_WRITERS))
    async def transfer(
        self, request: AnyRequest, case_id: IdPath, data: JSONBody[TransferCreate], ctx: Ctx
    ) -> Handover:
        """Send the case to another office; it moves when that office accepts."""
        resources = resources_of(request)
        async with scoped_transaction(resources.pool, ctx.caller) as conn:
            return await service.transfer(conn, ctx, case_id, data, resources.clock.now())
