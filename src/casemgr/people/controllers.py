"""HTTP routes of the person registry."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.di import Provide
from litestar.params import JSONBody, QueryParameter

from casemgr.auth.principal import CASE_READERS, CASE_WRITERS
from casemgr.db import scoped_transaction
from casemgr.people import service
from casemgr.people.schemas import AddressIn, Person, PersonCreate, PersonPage, PersonUpdate
from casemgr.web.access import AnyRequest, Ctx, access, request_context, resources_of
from casemgr.wire import Cursor, IdPath


class PersonController(Controller):
    path = "/people"
    tags = ["people"]
    dependencies = {"ctx": Provide(request_context, sync_to_thread=False)}

    @get("/", opt=access("person.search", CASE_READERS))
    async def search_people(
        self,
        request: AnyRequest,
        ctx: Ctx,
        q: Annotated[
            str,
            QueryParameter(
                min_length=1, max_length=100, description="name, alias, pinyin, initials or ID number"
            ),
        ],
        after: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> PersonPage:
        """Search the people the caller may see."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.search(conn, ctx, q, after=after, limit=limit)

    @post("/", opt=access("person.create", CASE_WRITERS))
    async def register_person(self, request: AnyRequest, data: JSONBody[PersonCreate], ctx: Ctx) -> Person:
        """Register a person. A known ID number is a 409 naming the existing person; the same
        name and birth date is a 409 listing candidates unless confirm_possible_duplicate."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.register(conn, ctx, data)

    @get("/{person_id:int}", opt=access("person.read", CASE_READERS, purpose=True))
    async def get_person(self, request: AnyRequest, person_id: IdPath, ctx: Ctx) -> Person:
        """A person with their address history and the cases the caller may read."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.read(conn, ctx, person_id)

    @patch("/{person_id:int}", opt=access("person.update", CASE_WRITERS))
    async def update_person(
        self, request: AnyRequest, person_id: IdPath, data: JSONBody[PersonUpdate], ctx: Ctx
    ) -> Person:
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.update(conn, ctx, person_id, data)

    @post("/{person_id:int}/addresses", opt=access("person.address_add", CASE_WRITERS))
    async def add_address(
        self, request: AnyRequest, person_id: IdPath, data: JSONBody[AddressIn], ctx: Ctx
    ) -> Person:
        """A new current address of its kind; the previous one is kept as history."""
        async with scoped_transaction(resources_of(request).pool, ctx.caller) as conn:
            return await service.add_address(conn, ctx, person_id, data)
