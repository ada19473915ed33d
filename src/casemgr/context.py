"""What a service needs to know about the request it serves, independent of HTTP."""

from __future__ import annotations

import msgspec

from casemgr.auth.principal import Principal


class RequestContext(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    principal: Principal | None = None
    # The stated purpose of a read of sensitive data (X-Purpose), recorded in the audit.
    purpose: str | None = None

    @property
    def caller(self) -> Principal:
        """The authenticated caller; routes that reach a service always have one."""
        if self.principal is None:
            raise RuntimeError("this operation needs an authenticated caller")
        return self.principal
