"""The collector schedule: long-lived objects leave the collector's scans, and cyclic garbage
among them is still freed at the next full collection."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from casemgr import collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


async def test_survivors_are_frozen_and_frozen_cycles_are_freed_by_the_full_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collector, "FREEZE_EVERY_S", 0.05)
    monkeypatch.setattr(collector, "FULL_COLLECTION_EVERY", 4)
    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle: only the cyclic collector can free it
    alive = weakref.ref(a)
    task = asyncio.create_task(collector.collect_periodically())
    try:
        await asyncio.sleep(0.08)  # one freeze
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()
        assert alive() is not None  # frozen: an ordinary collection leaves it alone
        await asyncio.sleep(0.25)  # the fourth period: thawed, collected, frozen again
        assert alive() is None
    finally:
        task.cancel()
        gc.unfreeze()
