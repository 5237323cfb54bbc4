"""The normalizer: raw webhook stream in, typed event streams out, at least once, same ids.

It is a FastStream batch subscriber on the raw stream. For each batch it
publishes every event ``normalize`` derives (each to its stream, keyed as the
catalogue says), waits for all acknowledgements, and returns; only then does
FastStream commit the batch (``AckPolicy.NACK_ON_ERROR``: a failure seeks back
to the batch's first records, so nothing after them is committed first). A
crash in between republishes the same events with the same ids, which
consumers de-duplicate. Running it with a fresh group and a fresh output prefix
replays the raw stream from the beginning into new topics.

Sizes follow ingest's limit (:mod:`mmbus.contracts.sizes`): raw records of up to
``record_bound(limit)`` bytes are fetched, and derived events up to that size
published. A derived event larger than that (it would be refused for good and
stall the stream) is replaced by a dead letter that names it; the raw record keeps
its content.

With tracing on (:mod:`services.ingest.spans`), each raw record gets a span that
continues the receiver's trace from its headers, and each derived event a span
whose record carries that trace on; statuses and clicks are linked to their
send's trace, which :mod:`services.ingest.send_traces` learns from the send
streams (the why of that design is there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from mmbus.consumer import kafka_broker
from mmbus.contracts.codec import DecodeFailure, KafkaRecord, decode, encode
from mmbus.contracts.envelope import Message, derive_id
from mmbus.contracts.sizes import record_bound
from mmbus.contracts.topics import Stream, topic_name
from mmbus.contracts.webhook_events import DeadLetterRecorded, WebhookReceived
from mmbus.dead_letters import dead_letter
from mmbus.tracing import enabled, inject
from services.common.kafka_admin import ensure_project_topics
from services.common.logging import get_logger
from services.ingest.normalize import normalize
from services.ingest.send_traces import SendTraces
from services.ingest.settings import IngestSettings
from services.ingest.spans import normalizing, publishing

log = get_logger("mmbus.normalizer")

Records = tuple[ConsumerRecord[bytes, bytes], ...]


async def _raw_records(message: StreamMessage[Any]) -> Records:
    # The records themselves, not their bodies: a dead letter needs their coordinates.
    records: Records = message.raw_message
    return records


class Normalizer:
    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.output_prefix = settings.normalizer_output_prefix or settings.topic_prefix
        self.raw_topic = topic_name(Stream.RAW_WEBHOOKS, settings.topic_prefix)
        self.processed = 0
        self.lag = 0
        self.max_record_bytes = record_bound(settings.ingest_max_body_bytes)
        # Set by run() when tracing is on: links statuses and clicks to their sends.
        self.traces: SendTraces | None = None
        self._broker = self.broker()

    def topic_for(self, event: Message) -> str:
        return topic_name(Stream(event.topic_stream), self.output_prefix)

    def broker(self) -> KafkaBroker:
        broker = kafka_broker(
            self.settings,
            client_id="mmbus-normalizer",
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=self.max_record_bytes,
            # Per-batch "Received/Processed" lines are DEBUG; failures still log as errors.
            logger=logging.getLogger("mmbus.normalizer.faststream"),
            log_level=logging.DEBUG,
        )
        subscriber = broker.subscriber(
            self.raw_topic,
            group_id=self.settings.normalizer_group_id,
            auto_offset_reset="earliest",
            batch=True,
            max_records=500,
            max_partition_fetch_bytes=self.max_record_bytes,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw_records,
        )
        subscriber(self._handle)
        return broker

    async def run(self, stop: asyncio.Event) -> None:
        await ensure_project_topics(self.settings, self.output_prefix)
        learning, done = None, asyncio.Event()
        if enabled():  # tracing on: learn the sends' traces first (services/ingest/send_traces)
            self.traces = SendTraces(
                self.settings,
                self.settings.topic_prefix,
                capacity=self.settings.normalizer_trace_links,
                lookback_s=self.settings.normalizer_trace_lookback_s,
            )
            await self.traces.start()
            learning = asyncio.create_task(self.traces.run(done), name="send-traces")
        try:
            await self._broker.start()
            await stop.wait()
        finally:
            await self._broker.stop()
            done.set()  # the learner stops with the normalizer, whatever stopped it
            if learning is not None:
                await asyncio.gather(learning, return_exceptions=True)

    async def _handle(self, records: Any, message: KafkaMessage) -> None:
        batch: Records = records
        derived = [(record, self._events(record)) for record in batch]
        traces = self.traces
        if traces is not None and traces.misses([e for _, events in derived for e in events]):
            await traces.settle()  # the send events written so far, before linking
        futures: list[asyncio.Future[RecordMetadata]] = []
        for record, events in derived:
            with normalizing(record):
                for event in events:
                    event, rec = self._fitting(event, record)
                    topic = self.topic_for(event)
                    if traces is None:
                        futures.append(await self._publish(event, rec, topic, rec.headers))
                        continue
                    with publishing(event, topic, traces.link_for(event)):
                        # The event carries the webhook's trace on to its consumers.
                        headers = inject(rec.headers)
                        futures.append(await self._publish(event, rec, topic, headers))
        await asyncio.gather(*futures)  # every event durable before FastStream commits
        self.processed += len(batch)
        self.lag = _lag(message.consumer, batch)

    async def _publish(
        self, event: Message, rec: KafkaRecord, topic: str, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[RecordMetadata]:
        future: asyncio.Future[RecordMetadata] = await self._broker.publish(
            rec.value,
            topic,
            key=rec.key,
            headers={name: value.decode() for name, value in headers},
            correlation_id=event.correlation_id or event.id,
            no_confirm=True,
        )
        return future

    def _fitting(
        self, event: Message, raw: ConsumerRecord[bytes, bytes]
    ) -> tuple[Message, KafkaRecord]:
        """The event, or a dead letter naming it when it is too large to publish."""
        rec = encode(event)
        size = len(rec.value) + len(rec.key)
        if size <= self.max_record_bytes:
            return event, rec
        log.warning("derived event too large; dead-lettered", type=event.type, bytes=size)
        letter = DeadLetterRecorded.model_validate(
            {
                "id": derive_id("dead_letter.recorded", {"event": event.id}),
                "time": event.time,
                "source": "mmbus/normalizer",
                "subject": event.id,
                "causation_id": event.causation_id,
                "data": {
                    "source_topic": raw.topic,
                    "partition": raw.partition,
                    "offset": raw.offset,
                    "value_b64": None,
                    "reason": "event_too_large",
                    "detail": f"{event.type} {event.id} is {size} bytes, over the "
                    f"{self.max_record_bytes} its topic takes; the raw record at these "
                    "coordinates holds its content",
                    "consumer": self.settings.normalizer_group_id,
                },
            }
        )
        return letter, encode(letter)

    def _events(self, record: ConsumerRecord[bytes, bytes]) -> list[Message]:
        raw = decode(record.value, record.headers)
        if isinstance(raw, WebhookReceived):
            return normalize(raw)
        failure = (
            raw
            if isinstance(raw, DecodeFailure)
            else DecodeFailure("unknown_type", f"{raw.type} on the raw stream")
        )
        log.warning("raw record dead-lettered", reason=failure.reason, offset=record.offset)
        return [
            dead_letter(
                record,
                failure,
                consumer=self.settings.normalizer_group_id,
                source="mmbus/normalizer",
            )
        ]


def _lag(consumer: object, batch: Sequence[ConsumerRecord[bytes, bytes]]) -> int:
    """Records behind the end of the batch's partitions, from the last fetch (no request)."""
    if not isinstance(consumer, AIOKafkaConsumer):
        return 0
    last: dict[TopicPartition, int] = {}
    for record in batch:
        last[TopicPartition(record.topic, record.partition)] = record.offset
    behind = 0
    for tp, offset in last.items():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            behind += max(0, highwater - (offset + 1))
    return behind
