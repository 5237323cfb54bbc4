"""Small pieces of the runner: the rebalance listener, the drain, a guarded wait, the GC set-up."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition

from services.sender.stopping import Stops

# Allocations of container objects between two young-generation collections (CPython's
# default is 700). With hundreds of commands in flight, most of what a command allocates
# lives across a few awaits: at 700 it was traversed by one or two collections before it
# died, and collections took a quarter of the sender's CPU per send (measured with
# ``python -m bench.sender --stages``). A few tens of thousands of young objects are a
# few megabytes.
GC_YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Set up the garbage collector for the sender process, once it has started.

    What exists by then (modules, settings, clients) lives as long as the process:
    frozen, it is no longer traversed by every full collection. Reference counting
    still frees what the sender drops; only cycles wait for a collection.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


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


async def drain_tasks(
    pending: list[asyncio.Task[None]], *, limit_s: float, stops: Stops | None = None
) -> int:
    """Wait up to ``limit_s`` for the tasks, then stop the rest; how many were stopped.

    With ``stops``, a task in an API call finishes the call and writes its answer
    first (:mod:`services.sender.stopping`); the wait for those is bounded by the
    HTTP client's timeouts, which the settings keep inside the rebalance timeout.
    """
    if not pending:
        return 0
    _, still_running = await asyncio.wait(pending, timeout=limit_s)
    for task in still_running:
        if stops is None:
            task.cancel()
        else:
            stops.stop(task)
    await asyncio.gather(*still_running, return_exceptions=True)
    if stops is not None:
        for task in still_running:
            stops.forget(task)
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


async def unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run ``work`` until it ends or ``stop`` is set, then cancel it; its error is raised."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        stopper.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
    error = None if task.cancelled() else task.exception()
    if error is not None:
        raise error
