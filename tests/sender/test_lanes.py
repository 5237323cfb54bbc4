"""Lanes keep one recipient's commands in order and let other recipients through."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from services.sender.lanes import Lanes

KEY = ("106540352242922", "447911123456")
OTHER = ("106540352242922", "447911123457")


async def test_commands_of_one_lane_run_in_the_order_they_came() -> None:
    lanes = Lanes()
    gates = [asyncio.Event() for _ in range(3)]
    first_running = asyncio.Event()
    order: list[int] = []

    def work(i: int) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            first_running.set()
            await gates[i].wait()
            order.append(i)

        return run

    tasks = [asyncio.create_task(lanes.run(KEY, work(i))) for i in range(3)]
    # Tasks take their first step in the order made: the others are queued behind it.
    await asyncio.wait_for(first_running.wait(), timeout=5)
    for gate in reversed(gates):  # the last may go first; the lane must not let it
        gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert len(lanes) == 0


async def test_another_recipient_is_not_held_up() -> None:
    lanes = Lanes()
    stuck, running = asyncio.Event(), asyncio.Event()
    done: list[str] = []

    async def slow() -> None:
        running.set()
        await stuck.wait()
        done.append("slow")

    async def quick() -> None:
        done.append("quick")

    first = asyncio.create_task(lanes.run(KEY, slow))
    await asyncio.wait_for(running.wait(), timeout=5)
    await lanes.run(OTHER, quick)
    assert done == ["quick"]
    stuck.set()
    await first
    assert done == ["quick", "slow"]


async def test_a_command_after_a_finished_one_runs_at_once() -> None:
    lanes = Lanes()
    ran: list[int] = []

    async def one() -> None:
        ran.append(len(ran))

    await lanes.run(KEY, one)
    await lanes.run(KEY, one)
    assert ran == [0, 1]
    assert len(lanes) == 0
