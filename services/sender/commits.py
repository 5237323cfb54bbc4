"""The sender's commits: how far each partition is done, and committing it with its checkpoint.

A command's offset may be committed once it and every earlier command of its
partition have finished (:class:`~services.sender.offsets.PartitionProgress`);
each commit carries, in its metadata, the send-events offset from which the
partition's next owner must rebuild its ledger
(:class:`~services.sender.offsets.LedgerCheckpoint`). The runner reports each
command started and finished; this module keeps the books and commits them.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiokafka import TopicPartition

from services.common.logging import get_logger
from services.sender.offsets import LedgerCheckpoint, PartitionProgress, checkpoint_metadata

log = get_logger("mmbus.sender")


class Committer(Protocol):
    """What commits need of the consumer (aiokafka's AIOKafkaConsumer)."""

    async def commit(self, offsets: dict[TopicPartition, tuple[int, str]]) -> None: ...


class Commits:
    def __init__(self) -> None:
        self.progress: dict[TopicPartition, PartitionProgress] = {}
        self.committed: dict[TopicPartition, int] = {}
        # Per owned partition: where its next owner must start rebuilding the ledger.
        # Shared with the result publisher, which moves it as events land.
        self.checkpoints: dict[int, LedgerCheckpoint] = {}

    def partitions(self) -> list[TopicPartition]:
        """The partitions with commands taken since they were assigned."""
        return list(self.progress)

    def started(self, tp: TopicPartition, offset: int) -> None:
        progress = self.progress.get(tp)
        if progress is None:
            progress = self.progress[tp] = PartitionProgress(offset)
        progress.started(offset)

    def finished(self, tp: TopicPartition, offset: int) -> None:
        progress = self.progress.get(tp)
        if progress is not None:
            progress.finished(offset)

    def forget(self, tp: TopicPartition) -> None:
        """The partition moved on (revoked, drained and committed)."""
        self.progress.pop(tp, None)
        self.committed.pop(tp, None)
        self.checkpoints.pop(tp.partition, None)

    async def every(self, interval_s: float, consumer: Committer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(interval_s)
            await self.commit(consumer)

    async def commit(self, consumer: Committer) -> None:
        offsets: dict[TopicPartition, tuple[int, str]] = {}
        for tp, progress in self.progress.items():
            position = progress.committable()
            checkpoint = self.checkpoints.get(tp.partition)
            if position > self.committed.get(tp, -1) and checkpoint is not None:
                offsets[tp] = (position, checkpoint_metadata(checkpoint.scan_from(position)))
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # a rebalance in progress: the next tick commits
            log.info("commit deferred", error=type(exc).__name__)
            return
        self.committed.update({tp: position for tp, (position, _) in offsets.items()})
