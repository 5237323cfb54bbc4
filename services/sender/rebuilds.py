"""Ledger rebuilds of newly assigned partitions, each a task beside the consumer.

Not inside aiokafka's assignment callback: aiokafka sends no heartbeat while
that callback runs, and a rebuild longer than the group's session timeout
(10 s; in the chaos run, rebuilds of 40,000 send events took 10 to 13 s on two
busy cores) got the sender evicted from the group while it went on working on
partitions the group had already given to the other sender: two senders called
the API for the same commands. So the callback only closes the partitions'
gates and starts the rebuild; the partition's records wait at its gate until the
rebuild opens it, and a revocation cancels a rebuild still running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from services.common.logging import get_logger
from services.sender.ledger import Ledger
from services.sender.ledger_rebuild import rebuild_ledger
from services.sender.metrics import SenderMetrics
from services.sender.offsets import LedgerCheckpoint
from services.sender.settings import SenderSettings

log = get_logger("mmbus.sender")

# Fold these partitions' send events into the ledger: their checkpoints and the count.
RebuildLedger: TypeAlias = Callable[
    [Ledger, SenderSettings, list[int]], Awaitable[tuple[dict[int, LedgerCheckpoint], int]]
]


class Rebuilds:
    def __init__(
        self,
        ledger: Ledger,
        settings: SenderSettings,
        checkpoints: dict[int, LedgerCheckpoint],
        metrics: SenderMetrics,
        on_failure: Callable[[Exception], None],
        rebuild: RebuildLedger = rebuild_ledger,
    ) -> None:
        self._ledger = ledger
        self._settings = settings
        self._checkpoints = checkpoints
        self._metrics = metrics
        self._on_failure = on_failure
        self._rebuild_ledger = rebuild
        self._running: dict[asyncio.Task[None], frozenset[int]] = {}

    def start(self, gates: dict[int, asyncio.Event]) -> None:
        """Rebuild the ledger of these partitions, then open their gates."""
        task = asyncio.create_task(self._rebuild(gates), name="sender-ledger-rebuild")
        self._running[task] = frozenset(gates)
        task.add_done_callback(lambda t: self._running.pop(t, None))

    async def cancel(self, partitions: set[int]) -> None:
        """The partitions are revoked: a rebuild for any of them stops (the next owner's
        rebuild replaces it), and their gates stay closed."""
        stopping = [t for t, parts in self._running.items() if parts & partitions]
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)

    async def _rebuild(self, gates: dict[int, asyncio.Event]) -> None:
        partitions = sorted(gates)
        try:
            rebuilt, count = await self._rebuild_ledger(self._ledger, self._settings, partitions)
        except Exception as exc:
            log.exception("ledger rebuild failed; stopping", partitions=partitions)
            self._on_failure(exc)
            return
        self._checkpoints.update(rebuilt)
        self._metrics.ledger_rebuild_events.inc(count)
        for gate in gates.values():
            gate.set()
