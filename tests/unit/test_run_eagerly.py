"""run_eagerly: a coroutine runs in the caller's turn, and a task carries it on only if it waits."""

from __future__ import annotations

import asyncio

import pytest

from casemgr.alerts.push import run_eagerly


async def test_a_coroutine_that_does_not_wait_is_done_before_run_eagerly_returns() -> None:
    done: list[str] = []

    async def write() -> None:
        done.append("written")

    assert run_eagerly(write()) is None
    assert done == ["written"]


async def test_a_coroutine_that_waits_is_carried_on_by_a_task_with_the_awaited_value() -> None:
    socket_ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def write() -> None:
        seen.append("before")
        seen.append(await socket_ready)

    task = run_eagerly(write())
    assert task is not None
    assert seen == ["before"]  # ran up to its first wait in our turn
    socket_ready.set_result("drained")
    await task
    assert seen == ["before", "drained"]


async def test_errors_and_cancellation_reach_the_carried_on_coroutine() -> None:
    loop = asyncio.get_running_loop()
    failing: asyncio.Future[None] = loop.create_future()

    async def write(waiting: asyncio.Future[None]) -> None:
        await waiting

    task = run_eagerly(write(failing))
    assert task is not None
    failing.set_exception(ConnectionResetError("peer gone"))
    with pytest.raises(ConnectionResetError):
        await task

    unwound: list[str] = []

    async def patient(tag: str) -> None:
        try:
            await loop.create_future()
        finally:
            unwound.append(tag)

    started = run_eagerly(patient("cancelled while waiting"))
    assert started is not None
    await asyncio.sleep(0)  # the task has taken over the wait
    not_started = run_eagerly(patient("cancelled before its task ran"))
    assert not_started is not None
    for task in (started, not_started):
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert unwound == ["cancelled while waiting", "cancelled before its task ran"]
