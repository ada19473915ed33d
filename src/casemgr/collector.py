"""When the cyclic garbage collector may pause a process, and for how long.

With 10,000 live alert streams a worker holds a few million long-lived objects (a response,
tasks and buffers per connection), and CPython 3.11's collector scans all of them in each
full collection, which its own heuristics start every few seconds under load: 750-820 ms
pauses, measured with gc.callbacks under bench/alert_stream.py, each one delaying every event
in flight. Here what has lived through ten seconds is frozen (left out of the collector's
scans), and every ten minutes everything is thawed and collected in one go: a pause of that
size every ten minutes instead of every few seconds. Cyclic garbage among frozen objects waits
for the next full collection (memory freed by reference counts is freed at once, as always).
"""

from __future__ import annotations

import asyncio
import gc
import time

import structlog

log = structlog.get_logger(__name__)

FREEZE_EVERY_S = 10.0
FULL_COLLECTION_EVERY = 60  # freezes: one full collection every ten minutes


def collect_everything() -> int:
    """Thaw everything, collect it and freeze what is left: the pause every full collection
    costs (bench/worker_path.py times it with a worker's device cache). Returns what it freed."""
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    return collected


async def collect_periodically() -> None:
    """Freeze what has lived through the last period (O(1): the collector's lists are moved,
    not scanned); every FULL_COLLECTION_EVERY periods, thaw everything and collect it."""
    gc.collect()
    gc.freeze()
    periods = 0
    while True:
        await asyncio.sleep(FREEZE_EVERY_S)
        periods += 1
        if periods % FULL_COLLECTION_EVERY:
            gc.freeze()
            continue
        started = time.perf_counter()
        collected = collect_everything()
        log.info(
            "garbage_collected",
            collected=collected,
            frozen=gc.get_freeze_count(),
            pause_ms=round((time.perf_counter() - started) * 1000, 1),
        )
