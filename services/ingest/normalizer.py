"""The normalizer: raw webhook stream in, typed event streams out, at least once, same ids.

For each raw record it publishes every event ``normalize`` derives (each to its
stream, keyed as the catalogue says), waits for all acknowledgements, then
commits the raw offset. A crash in between republishes the same events with the
same ids, which consumers de-duplicate. Running it with a fresh group and a
fresh output prefix replays the raw stream from the beginning into new topics.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from mmbus.contracts.codec import DecodeFailure, decode, encode
from mmbus.contracts.envelope import Message, derive_id
from mmbus.contracts.topics import Stream, topic_name
from mmbus.contracts.webhook_events import DeadLetterRecorded, WebhookReceived
from services.common.kafka_admin import ensure_project_topics
from services.common.logging import get_logger
from services.ingest.normalize import normalize
from services.ingest.settings import IngestSettings

log = get_logger("mmbus.normalizer")


class Normalizer:
    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.output_prefix = settings.normalizer_output_prefix or settings.topic_prefix
        self.raw_topic = topic_name(Stream.RAW_WEBHOOKS, settings.topic_prefix)
        self.processed = 0
        self.lag = 0

    def topic_for(self, event: Message) -> str:
        return topic_name(Stream(event.topic_stream), self.output_prefix)

    async def run(self, stop: asyncio.Event) -> None:
        await ensure_project_topics(self.settings, self.output_prefix)
        options = self.settings.kafka_client_options()
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=1024 * 1024,
            **self.settings.kafka_producer_options(),
        )
        consumer = AIOKafkaConsumer(
            self.raw_topic,
            group_id=self.settings.normalizer_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
            **options,
        )
        await producer.start()
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    futures = []
                    for record in records:
                        for event in self._events(record):
                            rec = encode(event)
                            futures.append(
                                await producer.send(
                                    self.topic_for(event),
                                    value=rec.value,
                                    key=rec.key,
                                    headers=rec.headers,
                                )
                            )
                    await asyncio.gather(*futures)  # every event durable before the commit
                    await consumer.commit({tp: records[-1].offset + 1})
                    self.processed += len(records)
                    end = (await consumer.end_offsets([tp]))[tp]
                    self.lag = end - (records[-1].offset + 1)
        finally:
            await consumer.stop()
            await producer.stop()

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
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        return [
            DeadLetterRecorded.model_validate(
                {
                    "id": derive_id("dead_letter.recorded", where),
                    "time": _record_time(record),
                    "source": "mmbus/normalizer",
                    "subject": f"{record.topic}:{record.partition}:{record.offset}",
                    "data": {
                        "source_topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "key_b64": base64.b64encode(record.key).decode() if record.key else None,
                        "value_b64": base64.b64encode(record.value).decode()
                        if record.value
                        else None,
                        "reason": failure.reason,
                        "detail": failure.detail,
                        "errors": failure.errors,
                        "consumer": self.settings.normalizer_group_id,
                    },
                }
            )
        ]


def _record_time(record: ConsumerRecord[bytes, bytes]) -> str:
    return datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat()
