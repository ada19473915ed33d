"""One error tree for the whole service, translated once into problem+json responses.

    CasemgrError                      500  anything we raise on purpose
    ├── BadRequest                    400  the request cannot be read
    ├── ValidationFailed              422  readable, but a field breaks a rule (names it)
    ├── Unauthenticated               401  no valid session (audited as a denial)
    ├── Forbidden                     403  authenticated, not allowed (audited as a denial)
    ├── NotFound                      404
    ├── Conflict                      409  clashes with the current state
    │   ├── DuplicatePerson                    the ID number is registered already
    │   └── PossibleDuplicate                  same name and birth date: confirm to go on
    ├── PayloadTooLarge               413  a body or batch over its limit
    ├── UnsupportedMediaType          415  a Content-Type the endpoint does not read
    ├── AccountLocked                 423  too many failed logins; an admin must unlock
    ├── PurposeRequired               428  a read of sensitive data without a stated purpose
    └── ServiceUnavailable            503  a dependency (PostgreSQL, Redis) is not answering

Every error carries a machine-readable ``code`` (the last part of the problem type) and a
``detail`` meant for the person who sent the request; neither may contain personal data.
Database errors are translated at the repository boundary (``raise Conflict(...) from e``).
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    message: str


class CasemgrError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        reason: str | None = None,
        object_type: str | None = None,
        object_id: object = None,
        already_audited: bool = False,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        # A short snake_case code for the audit trail (denials) and for clients.
        self.reason = reason or self.code
        # What a denial was about, for its audit row.
        self.object_type = object_type
        self.object_id = object_id
        # Set when the service already wrote the audit row (a failed login commits its own).
        self.already_audited = already_audited
        # Extension members of the problem (RFC 9457), e.g. the id of an existing duplicate.
        self.extra = extra or {}


class BadRequest(CasemgrError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class ValidationFailed(CasemgrError):
    status = 422
    code = "validation_failed"
    title = "Validation failed"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        field: str | None = None,
        rule: str | None = None,
    ) -> None:
        # ``rule``: the name of a business rule the request breaks, for clients to act on.
        super().__init__(detail, extra={"rule": rule} if rule else None)
        if errors is None:
            errors = [FieldError(field=field, message=detail)] if field else []
        self.errors = errors

    def nested_in(self, parent: str) -> ValidationFailed:
        """The same failure, for a body where the checked object sits under ``parent``."""
        return ValidationFailed(
            self.detail,
            errors=[FieldError(field=f"{parent}.{e.field}", message=e.message) for e in self.errors],
        )


class Unauthenticated(CasemgrError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(CasemgrError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(CasemgrError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(CasemgrError):
    status = 409
    code = "conflict"
    title = "Conflict"


class DuplicatePerson(Conflict):
    """The ID number is registered already; ``existing_person_id`` says to whom."""

    code = "duplicate_person"
    title = "Person already registered"


class PossibleDuplicate(Conflict):
    """Someone of the same name and birth date exists; the officer must confirm."""

    code = "possible_duplicate"
    title = "Possible duplicate"


class PayloadTooLarge(CasemgrError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(CasemgrError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class AccountLocked(CasemgrError):
    status = 423
    code = "account_locked"
    title = "Account locked"


class PurposeRequired(CasemgrError):
    status = 428
    code = "purpose_required"
    title = "Purpose required"


class TooManyRequests(CasemgrError):
    status = 429
    code = "too_many_requests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: int, reason: str | None = None) -> None:
        super().__init__(detail, reason=reason)
        self.retry_after_s = max(1, retry_after_s)


class ServiceUnavailable(CasemgrError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after_s: int = 5, reason: str | None = None) -> None:
        super().__init__(detail, reason=reason)
        self.retry_after_s = max(1, retry_after_s)


__all__ = [
    "AccountLocked",
    "BadRequest",
    "CasemgrError",
    "Conflict",
    "DuplicatePerson",
    "FieldError",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "PossibleDuplicate",
    "PurposeRequired",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthenticated",
    "UnsupportedMediaType",
    "ValidationFailed",
]
