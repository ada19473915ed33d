"""Wire formats of the person registry."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

import msgspec

from casemgr.wire import Id, line

FullName = Annotated[str, line(100)]
IdNumber = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9]{17}[0-9X]$", description="18-character resident ID (GB 11643)")
]
PhoneNumber = Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9][0-9 -]{4,23}$")]


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


class AddressKind(StrEnum):
    HOUSEHOLD_REGISTRATION = "household_registration"  # hukou
    RESIDENCE = "residence"
    WORK = "work"


class Phone(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    number: PhoneNumber
    label: Annotated[str, line(30)] | None = None


class ContactPerson(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: Literal["guardian", "emergency"]
    name: Annotated[str, line(100)]
    relation: Annotated[str, line(50)]
    phone: PhoneNumber


class AddressIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: AddressKind
    address: Annotated[str, line(300)]
    valid_from: date


class Address(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: AddressKind
    address: str
    valid_from: date
    # None while current; the day the next address of its kind took over otherwise.
    valid_to: date | None


Aliases = Annotated[list[Annotated[str, line(100)]], msgspec.Meta(max_length=10)]
Phones = Annotated[list[Phone], msgspec.Meta(max_length=10)]
Contacts = Annotated[list[ContactPerson], msgspec.Meta(max_length=10)]


class PersonCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    full_name: FullName
    sex: Sex
    birth_date: date
    id_number: IdNumber | None = None
    aliases: Aliases = []
    phones: Phones = []
    contacts: Contacts = []
    addresses: Annotated[list[AddressIn], msgspec.Meta(max_length=3)] = []
    # The unit that registers the person (defaults to the caller's own).
    org_unit_id: Id | None = None
    # Someone with the same name and birth date exists: register anyway, knowingly.
    confirm_possible_duplicate: bool = False


class PersonUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    full_name: FullName | msgspec.UnsetType = msgspec.UNSET
    sex: Sex | msgspec.UnsetType = msgspec.UNSET
    birth_date: date | msgspec.UnsetType = msgspec.UNSET
    id_number: IdNumber | msgspec.UnsetType | None = msgspec.UNSET
    aliases: Aliases | msgspec.UnsetType = msgspec.UNSET
    phones: Phones | msgspec.UnsetType = msgspec.UNSET
    contacts: Contacts | msgspec.UnsetType = msgspec.UNSET


class PersonCaseRef(msgspec.Struct, frozen=True, kw_only=True):
    """A case of the person that the caller may read."""

    id: int
    program: str
    status: str
    org_unit_id: int
    officer_id: int


class Person(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    full_name: str
    name_pinyin: str
    name_initials: str
    sex: Sex
    birth_date: date
    id_number: str | None
    aliases: list[str]
    phones: list[Phone]
    contacts: list[ContactPerson]
    org_unit_id: int
    created_at: datetime
    updated_at: datetime
    addresses: list[Address] = []
    cases: list[PersonCaseRef] = []


class PersonSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    full_name: str
    name_pinyin: str
    sex: Sex
    birth_date: date
    id_number: str | None
    org_unit_id: int


class PersonPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PersonSummary]
    next_after: int | None
