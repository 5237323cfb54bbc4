"""The Kafka side of :class:`services.sender.ports.Results`: where each sender event goes.

Events about a command go to the send-event partition with the command's
partition number (co-partitioning: the next owner of the partition rebuilds its
ledger from there), enter the ledger once acknowledged, and move the
partition's checkpoint. Observations go to their own stream, keyed as the
catalogue says; dead letters to the dead-letter stream.
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from opentelemetry.trace import SpanKind

from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import Stream, topic_name
from services.sender.fast_events import encode
from services.sender.ledger import Ledger
from services.sender.offsets import LedgerCheckpoint
from services.sender.ports import CommandRecord, Observer
from services.sender.spans import inject, span, traced


class KafkaResults:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        prefix: str,
        ledger: Ledger,
        checkpoints: dict[int, LedgerCheckpoint],
        observer: Observer | None = None,
    ) -> None:
        self._producer = producer
        self._prefix = prefix
        self.events_topic = topic_name(Stream.SEND_EVENTS, prefix)
        self.dead_letter_topic = topic_name(Stream.DEAD_LETTERS, prefix)
        self._ledger = ledger
        self._checkpoints = checkpoints
        self._observer = observer

    async def about(self, event: Message, command: CommandRecord) -> None:
        partition = command.partition
        checkpoint = self._checkpoints.get(partition)
        if checkpoint is not None:
            checkpoint.started(command.offset)  # before its first write lands
        if traced():
            written = await self._write(self.events_topic, event, partition=partition)
        else:
            # _produce, inlined: two events per send, and every coroutine layer between
            # the handler and the producer is passed through again on each resumption.
            record = encode(event)
            future = await self._producer.send(
                self.events_topic,
                value=record.value,
                key=record.key,
                headers=record.headers,
                partition=partition,
            )
            written = (await future).offset
        self._ledger.apply(event)
        if checkpoint is not None:
            checkpoint.wrote(written)
        if self._observer is not None:
            self._observer.event_written(event, command)

    async def observed(self, event: Message) -> None:
        await self._write(topic_name(Stream(event.topic_stream), self._prefix), event)

    async def dead_letter(self, event: Message) -> None:
        await self._write(self.dead_letter_topic, event)

    async def _write(self, topic: str, event: Message, *, partition: int | None = None) -> int:
        if not traced():
            return await self._produce(topic, event, partition)
        # The event carries the command's trace (W3C traceparent), so whoever reads it
        # (a projection, another team's consumer) can continue or link to it.
        with span(
            f"{event.type} publish",
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
        ):
            return await self._produce(topic, event, partition)

    async def _produce(self, topic: str, event: Message, partition: int | None) -> int:
        record = encode(event)
        future = await self._producer.send(
            topic,
            value=record.value,
            key=record.key,
            headers=inject(record.headers),
            partition=partition,
        )
        return int((await future).offset)

    async def flush(self) -> None:
        """Every event already handed to the producer is durable (see the runner's drain)."""
        await self._producer.flush()
