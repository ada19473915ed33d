"""The program detail of a case: one typed record per program, a msgspec tagged union.

Some fields are sensitive: the clinical fields of a mental-illness case and the drug tests
and relapses of a drug-rehabilitation case. They are sealed (AES-GCM) in the application
before they reach PostgreSQL, and only roles cleared for them ever see them; for everyone
else the record comes without those fields (they are left UNSET, which the wire omits).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import msgspec

from casemgr.auth.principal import Role
from casemgr.crypto import Keyring
from casemgr.people.schemas import ContactPerson
from casemgr.wire import line

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType
Items = Annotated[list[Annotated[str, line(300)]], msgspec.Meta(max_length=30)]


class _Detail(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="program"):
    pass


class CommunityCorrections(_Detail, frozen=True, tag="community_corrections"):
    sentence_type: Literal["control", "probation", "parole", "temporary_service_outside_prison"]
    court: Annotated[str, line(200)]
    judgment_date: date
    # The day the judgment took effect: intake is due within 10 days of it.
    judgment_effective_date: date | None = None
    supervision_start: date | None = None
    supervision_end: date | None = None
    conditions: Items = []
    prohibitions: Items = []


class ReleasedPrisoner(_Detail, frozen=True, tag="released_prisoner"):
    prison: Annotated[str, line(200)]
    release_date: date
    assessment_risk: Literal["low", "medium", "high"] | None = None
    assessment_notes: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    resettlement_needs: list[
        Literal["housing", "employment", "training", "benefits", "medical", "family", "legal_aid"]
    ] = []
    # "Must meet and deliver": no home, job or family to go to; someone picks them up.
    must_meet: bool = False


class DrugTest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    date: date
    result: Literal["negative", "positive", "refused", "invalid"]
    substance: Annotated[str, line(100)] | None = None


class Relapse(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    date: date
    substance: Annotated[str, line(100)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class DrugRehab(_Detail, frozen=True, tag="drug_rehab"):
    kind: Literal["community_rehabilitation", "community_recovery"]
    agreement_start: date
    agreement_end: date | None = None
    drug_test_interval_days: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None
    # Sensitive (drug):
    drug_tests: Annotated[list[DrugTest], msgspec.Meta(max_length=500)] | Unset = UNSET
    relapses: Annotated[list[Relapse], msgspec.Meta(max_length=100)] | Unset = UNSET


class SevereMentalIllness(_Detail, frozen=True, tag="severe_mental_illness"):
    risk_grade: Annotated[int, msgspec.Meta(ge=0, le=5)]
    guardian: ContactPerson | None = None
    # Sensitive (clinical):
    diagnosis_icd10: Annotated[str, msgspec.Meta(pattern=r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")] | Unset = (
        UNSET
    )
    treatment_status: Literal["in_treatment", "not_in_treatment", "hospitalised", "unknown"] | Unset = UNSET
    medication_status: Literal["regular", "irregular", "none", "unknown"] | Unset = UNSET
    hospital: Annotated[str, line(200)] | Unset = UNSET


ProgramDetail = CommunityCorrections | ReleasedPrisoner | DrugRehab | SevereMentalIllness

_SENSITIVE: dict[str, tuple[str, ...]] = {
    "drug_rehab": ("drug_tests", "relapses"),
    "severe_mental_illness": ("diagnosis_icd10", "treatment_status", "medication_status", "hospital"),
}
# Who is cleared for the sensitive fields of each program.
_CLEARED: dict[str, frozenset[Role]] = {
    "drug_rehab": frozenset({Role.OFFICER, Role.SUPERVISOR}),
    "severe_mental_illness": frozenset({Role.HEALTH_WORKER}),
}


def sensitive_fields(program: str) -> tuple[str, ...]:
    return _SENSITIVE.get(program, ())


def cleared(role: Role, program: str) -> bool:
    """Whether a role may see and write the sensitive fields of a program's detail."""
    return role in _CLEARED.get(program, frozenset())


def program_of(detail: ProgramDetail) -> str:
    tag: str = type(detail).__struct_config__.tag  # type: ignore[assignment]
    return tag


def split(detail: ProgramDetail) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public part, sensitive part) as plain data; fields left UNSET are in neither."""
    public: dict[str, Any] = msgspec.to_builtins(detail)
    sensitive = {k: public.pop(k) for k in sensitive_fields(program_of(detail)) if k in public}
    return public, sensitive


def _aad(case_id: int) -> bytes:
    return f"cases.sealed_details:{case_id}".encode()


def seal(keyring: Keyring, case_id: int, sensitive: dict[str, Any]) -> bytes | None:
    return keyring.seal(msgspec.json.encode(sensitive), _aad(case_id)) if sensitive else None


def unseal(keyring: Keyring, case_id: int, sealed: bytes | None) -> dict[str, Any]:
    if sealed is None:
        return {}
    opened: dict[str, Any] = msgspec.json.decode(keyring.open(sealed, _aad(case_id)))
    return opened


def assemble(public: dict[str, Any], sensitive: dict[str, Any] | None) -> ProgramDetail:
    """The detail from its stored parts; without the sensitive part its fields stay UNSET."""
    detail: ProgramDetail = msgspec.convert({**public, **(sensitive or {})}, ProgramDetail)
    return detail
