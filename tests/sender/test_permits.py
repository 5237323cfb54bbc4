"""Permits: a counting semaphore, first come first served, that loses no permit to a cancel."""

from __future__ import annotations

import asyncio

import pytest

from services.sender.permits import Permits


async def _started(permits: Permits, name: str, order: list[str]) -> asyncio.Task[None]:
    """A task that takes a permit and records its turn, once it is queued at the gate."""
    at_gate = asyncio.Event()

    async def holder() -> None:
        at_gate.set()
        async with permits:
            order.append(name)

    queued = permits.waiting
    task = asyncio.create_task(holder(), name=name)
    await at_gate.wait()
    assert permits.waiting == queued + 1, "no permit free: it queued"
    return task


async def test_free_permits_are_taken_at_once_and_waiters_served_in_arrival_order() -> None:
    permits = Permits(2)
    await permits.acquire()
    await permits.acquire()
    assert permits.free == 0
    order: list[str] = []
    tasks = [await _started(permits, n, order) for n in ("a", "b", "c")]
    assert permits.waiting == 3
    assert order == []
    permits.release()
    permits.release()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]
    assert permits.free == 2
    assert permits.waiting == 0


async def test_a_waiter_cancelled_while_waiting_is_skipped() -> None:
    permits = Permits(1)
    await permits.acquire()
    order: list[str] = []
    first = await _started(permits, "first", order)
    second = await _started(permits, "second", order)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    permits.release()
    await second
    assert order == ["second"]
    assert permits.free == 1


async def test_a_waiter_cancelled_after_it_was_handed_a_permit_passes_it_on() -> None:
    permits = Permits(1)
    await permits.acquire()
    order: list[str] = []
    first = await _started(permits, "first", order)
    second = await _started(permits, "second", order)
    permits.release()  # handed to first, which has not run yet
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await second
    assert order == ["second"], "the permit went on to the next waiter"
    assert permits.free == 1, "and came back: none lost"


async def test_many_releases_in_one_turn_each_wake_one_waiter() -> None:
    permits = Permits(1)
    await permits.acquire()
    order: list[str] = []
    tasks = [await _started(permits, str(i), order) for i in range(200)]
    for _ in range(200):
        permits.release()  # a burst, as when a batch of answers arrives
    await asyncio.gather(*tasks)
    assert order == [str(i) for i in range(200)]
    assert permits.free == 200, "the one permit it had, and the 199 released beyond it"


def test_at_least_one_permit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Permits(0)


async def test_room_waits_for_a_free_permit_and_leaves_it_free() -> None:
    permits = Permits(1)
    await permits.acquire()
    room = asyncio.create_task(permits.room())
    await asyncio.sleep(0)
    assert not room.done(), "no permit free: room waits"
    permits.release()
    await asyncio.wait_for(room, 5)
    assert permits.free == 1, "room took the permit only to see it, and gave it back"
