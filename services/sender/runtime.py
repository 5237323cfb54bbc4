"""Small asyncio pieces of the runner: the rebalance listener, the drain, a guarded wait."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition


class FatalSenderError(RuntimeError):
    """The sender cannot go on without risking loss; it stops so it is restarted."""


class Rebalancing(Protocol):
    async def on_revoked(self, revoked: set[TopicPartition]) -> None: ...
    async def on_assigned(self, assigned: set[TopicPartition]) -> None: ...


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sender: Rebalancing) -> None:
        self.sender = sender

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.sender.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.sender.on_assigned(assigned)


async def drain_tasks(pending: list[asyncio.Task[None]], *, limit_s: float) -> int:
    """Wait up to ``limit_s`` for the tasks; cancel the rest; how many were cancelled."""
    if not pending:
        return 0
    _, still_running = await asyncio.wait(pending, timeout=limit_s)
    for task in still_running:
        task.cancel()
    await asyncio.gather(*still_running, return_exceptions=True)
    return len(still_running)


async def until(
    awaitable: Coroutine[Any, Any, Any], stop: asyncio.Event, watch: asyncio.Task[None]
) -> None:
    """Wait for ``awaitable`` unless ``stop`` is set or ``watch`` dies first."""
    main = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({main, stopper, watch}, return_when=asyncio.FIRST_COMPLETED)
    for t in (main, stopper):
        if t not in done:
            t.cancel()
    if watch in done and watch.exception() is not None:
        raise FatalSenderError(f"knowledge consumer failed: {watch.exception()}")
