"""Weekly schedules of inclusion zones (curfews), in the subject's local time zone.

A window runs on the given ISO weekdays (1 = Monday) from `start` to `end` local time; an end
at or before the start runs past midnight into the next day ("21:00"-"06:00"). Times are wall
clock in the subject's zone, so daylight-saving changes move the UTC instants, as they should.

The hot path asks "is this zone active at fix time t?" for every fix, so a compiled schedule
keeps the concrete windows of a horizon sorted in UTC milliseconds and answers by bisection;
it rebuilds the horizon when a time falls outside it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_HORIZON_DAYS = 9
_DAY_MS = 86_400_000


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message names the rule it breaks."""


class Window(msgspec.Struct, frozen=True, gc=False):
    days: tuple[int, ...]
    start: str
    end: str

    def __post_init__(self) -> None:
        if not self.days or any(d not in range(1, 8) for d in self.days):
            raise ScheduleError("days must list ISO weekdays 1 (Monday) to 7 (Sunday)")
        for name, value in (("start", self.start), ("end", self.end)):
            if not _HHMM.match(value):
                raise ScheduleError(f"{name} must be a time of day as HH:MM")


def parse_time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def _local_ms(day: date, hhmm: str, zone: ZoneInfo) -> int:
    hours, minutes = int(hhmm[:2]), int(hhmm[3:])
    return int(datetime.combine(day, time(hours, minutes), tzinfo=zone).timestamp() * 1000)


def concrete_windows(
    windows: Sequence[Window], zone: ZoneInfo, from_ms: int, days: int
) -> list[tuple[int, int]]:
    """The windows that overlap [from_ms, from_ms + days), as sorted, merged UTC ms intervals."""
    first_day = datetime.fromtimestamp(from_ms / 1000, tz=UTC).astimezone(zone).date() - timedelta(days=1)
    intervals: list[tuple[int, int]] = []
    for offset in range(days + 2):
        day = first_day + timedelta(days=offset)
        for window in windows:
            if day.isoweekday() not in window.days:
                continue
            end_day = day if window.end > window.start else day + timedelta(days=1)
            start_ms = _local_ms(day, window.start, zone)
            end_ms = _local_ms(end_day, window.end, zone)
            if end_ms > start_ms:
                intervals.append((start_ms, end_ms))
    intervals.sort()
    merged: list[tuple[int, int]] = []
    for start_ms, end_ms in intervals:
        if merged and start_ms <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end_ms))
        else:
            merged.append((start_ms, end_ms))
    return merged


class CompiledSchedule(msgspec.Struct, gc=False):
    windows: tuple[Window, ...]
    zone: ZoneInfo
    _from_ms: int = 0
    _to_ms: int = 0
    _starts: tuple[int, ...] = ()
    _ends: tuple[int, ...] = ()
    # The span around the last answer of active_at, between two window boundaries.
    _span_from: int = 0
    _span_to: int = 0
    _span_active: bool = False

    def _cover(self, t_ms: int) -> None:
        if self._from_ms + _DAY_MS <= t_ms < self._to_ms - _DAY_MS:
            return
        self._from_ms = t_ms - 2 * _DAY_MS
        self._to_ms = self._from_ms + _HORIZON_DAYS * _DAY_MS
        intervals = concrete_windows(self.windows, self.zone, self._from_ms, _HORIZON_DAYS)
        self._starts = tuple(s for s, _ in intervals)
        self._ends = tuple(e for _, e in intervals)

    def active_at(self, t_ms: int) -> bool:
        # Fixes come in time order: the answer holds until the next window boundary.
        if self._span_from <= t_ms < self._span_to:
            return self._span_active
        self._cover(t_ms)
        i = bisect.bisect_right(self._starts, t_ms) - 1
        if i >= 0 and t_ms < self._ends[i]:
            self._span_from, self._span_to, self._span_active = self._starts[i], self._ends[i], True
        else:
            previous_end = self._ends[i] if i >= 0 else self._from_ms
            next_start = self._starts[i + 1] if i + 1 < len(self._starts) else self._to_ms - _DAY_MS
            self._span_from, self._span_to, self._span_active = previous_end, next_start, False
        return self._span_active

    def current_or_next(self, t_ms: int) -> tuple[int, int] | None:
        """The window holding t, else the next one to start (None if none within a week)."""
        self._cover(t_ms)
        i = bisect.bisect_right(self._starts, t_ms) - 1
        if i >= 0 and t_ms < self._ends[i]:
            return self._starts[i], self._ends[i]
        if i + 1 < len(self._starts):
            return self._starts[i + 1], self._ends[i + 1]
        return None

    def next_start_after(self, t_ms: int) -> int | None:
        self._cover(t_ms)
        i = bisect.bisect_right(self._starts, t_ms)
        return self._starts[i] if i < len(self._starts) else None

    def next_end_after(self, t_ms: int) -> int | None:
        self._cover(t_ms)
        i = bisect.bisect_right(self._ends, t_ms)
        return self._ends[i] if i < len(self._ends) else None
