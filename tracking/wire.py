"""What devices send and what they get back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

DeviceId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class Ping(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One fix. A fix without a position (no satellites) leaves latitude and longitude out."""

    device_id: DeviceId
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**53)]  # increasing per device
    fix_time: Annotated[datetime, msgspec.Meta(tz=True)]
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    accuracy_m: Annotated[float, msgspec.Meta(ge=0, le=100_000)] | None = None
    speed_mps: Annotated[float, msgspec.Meta(ge=0, le=500)] | None = None
    battery_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    strap_state: Literal["intact", "cut"] = "intact"
    case_state: Literal["closed", "opened"] = "closed"


class RejectedPing(msgspec.Struct, kw_only=True, frozen=True):
    index: int
    reason: str


class IngestReply(msgspec.Struct, kw_only=True):
    accepted: int
    duplicate: int
    rejected: list[RejectedPing]
