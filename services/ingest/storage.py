"""Writing one record with the receiver's shared producer: stored, refused for good, or
(raised) Kafka unavailable now.

Two things about refusals that the producer does not handle for us:

- The broker refuses whole batches: a small webhook that shared a batch with one too
  large for the topic is refused with it. A record refused for its size by the broker
  is sent once more in a batch of its own; only a refusal of that batch is its own.
- A batch the broker refuses leaves a gap in the idempotent producer's sequence numbers
  for its partition. aiokafka does not repair it (Java's producer does): the next batch
  there fails with OutOfOrderSequenceNumber, which stops the producer for good, and
  every later webhook would be answered 503. So after a refusal, or once a producer
  has stopped so, a new producer (a new producer id, fresh sequences) takes over, and
  a record that failed on the old one is sent again on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
)
from prometheus_client import Histogram

from mmbus.contracts.codec import KafkaRecord
from mmbus.partitioner import partition_for
from services.common.logging import get_logger
from services.ingest.refusals import Refusal, refusal_of

log = get_logger("mmbus.ingest")

ProducerFactory = Callable[[], Awaitable[AIOKafkaProducer]]
# What leaves a producer unable to send again.
_FATAL = (OutOfOrderSequenceNumber, ProducerFenced)


class Storage:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        timeout_s: float,
        latency: Histogram,
        renew: ProducerFactory | None = None,
    ) -> None:
        self.producer = producer
        self.timeout_s = timeout_s
        self.latency = latency
        self._renew = renew
        self._renewing = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    async def store(self, topic: str, record: KafkaRecord) -> Refusal | None:
        """None once Kafka has the record; the refusal when it never will.

        Raises ``KafkaError`` or ``TimeoutError`` when Kafka cannot take it now.
        """
        started = time.perf_counter()
        # asyncio.timeout, not wait_for: no task per request (3.11+).
        async with asyncio.timeout(self.timeout_s):
            producer = self.producer
            try:
                future = await producer.send(
                    topic, value=record.value, key=record.key, headers=record.headers
                )
            except KafkaError as exc:
                # The producer's own size check refuses this record alone, before sending.
                refused = refusal_of(exc, topic, _size(record))
                return refused or await self._again(producer, topic, record, exc)
            try:
                await future
            except KafkaError as exc:
                if (refused := await self._again(producer, topic, record, exc)) is not None:
                    return refused
        self.latency.observe(time.perf_counter() - started)
        return None

    async def _again(
        self, producer: AIOKafkaProducer, topic: str, record: KafkaRecord, exc: KafkaError
    ) -> Refusal | None:
        """After a failure: raise when Kafka is unavailable now; otherwise send the record
        once more, alone, on a sound producer, and return its refusal if it is refused."""
        refused = refusal_of(exc, topic, _size(record))
        fatal = isinstance(exc, _FATAL)
        if refused is None and not fatal and producer is self.producer:
            raise exc
        if refused is not None or fatal:
            await self._replace(producer, exc)
        current = self.producer
        if fatal and current is producer:
            raise exc  # no way to a new producer: Kafka stays unavailable to this one
        try:
            await self._alone(current, topic, record)
        except KafkaError as again:
            if (refused := refusal_of(again, topic, _size(record))) is None:
                raise
            await self._replace(current, again)  # the lone refusal left a gap too
            return refused
        return None

    async def _replace(self, failed: AIOKafkaProducer, why: KafkaError) -> None:
        if self._renew is None:
            return
        async with self._renewing:
            if self.producer is not failed:
                return  # another request replaced it already
            self.producer = await self._renew()
        log.warning("producer replaced after a refusal", error=type(why).__name__)
        task = asyncio.create_task(self._retire(failed))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _retire(producer: AIOKafkaProducer) -> None:
        # What it still holds lands or fails; requests waiting on it then go to the new one.
        with contextlib.suppress(KafkaError):
            await producer.stop()

    async def _alone(self, producer: AIOKafkaProducer, topic: str, record: KafkaRecord) -> None:
        batch = producer.create_batch()
        appended = batch.append(
            timestamp=None, key=record.key, value=record.value, headers=record.headers
        )
        if appended is None:  # an empty batch takes any record; kept for the type checker
            raise MessageSizeTooLargeError()
        batch.close()
        partitions = sorted(await producer.partitions_for(topic))
        # Where the producer would have put it: the same partitioner.
        partition = partition_for(record.key, partitions, partitions)
        await (await producer.send_batch(batch, topic, partition=partition))

    async def close(self) -> None:
        """Flush and stop the producer, and any still retiring."""
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self.producer.stop()


def _size(record: KafkaRecord) -> int:
    return len(record.value) + len(record.key)
