"""A bounded cache of what each ingest worker keeps per device, that the garbage collector never
walks.

A worker keeps every device of the fleet it serves (a million devices, gigabytes), and casemgr's
collector thaws and collects everything every ten minutes (casemgr/collector.py). An OrderedDict
is always tracked by the collector, so each such collection walked all of its nodes and entries,
a cache miss each: 122-129 ms per collection with 1,000,000 devices against 17-20 ms with this
cache (`bench/worker_path.py` reports it per size), every upload to that worker waiting
meanwhile. CPython leaves a plain dict untracked while it holds nothing the
collector tracks, so this cache holds only strings, ints, None and values the collector does not
track (msgspec structs with gc=False): then both its dicts stay untracked.

The oldest device put in is the first dropped when the cache is full. Putting a cached device
again (a new version of its configuration) keeps its place.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class DeviceCache(Generic[V]):
    __slots__ = ("_entries", "_next", "_oldest", "_order", "get", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a device cache holds at least one device")
        self.size = size
        # A device forgotten (forget) keeps its key, with None, and its place in `_order`, so that
        # every key of `_entries` has exactly one place, and a full cache drops what the place
        # names without looking further.
        self._entries: dict[str, V | None] = {}
        self._order: dict[int, str] = {}  # place -> device; only ints and strings: never tracked
        self._oldest = 0
        self._next = 0
        # The device's value, or None: the dict's own method, so that the lookup every upload
        # makes costs no Python call of its own.
        self.get: Callable[[str], V | None] = self._entries.get

    def put(self, device_id: str, value: V) -> None:
        if gc.is_tracked(value):
            raise TypeError("a cached value must be one the garbage collector does not track")
        if device_id not in self._entries:
            if len(self._entries) >= self.size:
                # Deleting by key, never iterating: the slots deletions leave at a dict's front
                # are compacted away when it grows, so this stays O(1).
                del self._entries[self._order.pop(self._oldest)]
                self._oldest += 1
            self._order[self._next] = device_id
            self._next += 1
        self._entries[device_id] = value

    def forget(self, device_id: str) -> None:
        """The device's next upload loads its configuration again."""
        if device_id in self._entries:
            self._entries[device_id] = None

    def __len__(self) -> int:
        """Devices held, forgotten ones included until the cache drops them."""
        return len(self._entries)

    def devices(self) -> list[str]:
        """The devices held with a value, oldest first."""
        return [d for d in self._order.values() if self._entries[d] is not None]

    def untracked(self) -> bool:
        """Whether the collector's full collections leave the cache alone, as they should."""
        return not gc.is_tracked(self._entries) and not gc.is_tracked(self._order)
