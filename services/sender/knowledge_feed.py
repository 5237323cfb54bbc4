"""Filling the sender's :class:`~services.sender.knowledge.Knowledge` from Kafka, forever.

The account, template, preference and status streams are read from the
beginning on every start (they are the sender's memory of the world); the
sender takes commands only once this has caught up with the ends it saw.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from mmbus.contracts.codec import decode
from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import Stream, topic_name
from services.common.logging import get_logger
from services.sender.knowledge import Knowledge
from services.sender.settings import SenderSettings

log = get_logger("mmbus.sender")
STREAMS = (Stream.ACCOUNT, Stream.TEMPLATES, Stream.PREFERENCES, Stream.MESSAGE_STATUS)


class MissingTopicError(RuntimeError):
    """A stream the sender needs does not exist."""


async def follow_knowledge(
    knowledge: Knowledge, settings: SenderSettings, ready: asyncio.Event, stop: asyncio.Event
) -> None:
    consumer = AIOKafkaConsumer(
        client_id="mmbus-sender-knowledge",
        enable_auto_commit=False,
        **settings.kafka_client_options(),
    )
    await consumer.start()
    try:
        tps: list[TopicPartition] = []
        for stream in STREAMS:
            topic = topic_name(stream, settings.topic_prefix)
            partitions = consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
            tps.extend(TopicPartition(topic, p) for p in sorted(partitions))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for rec in records:
                    event = decode(rec.value, rec.headers)
                    if isinstance(event, Message):
                        knowledge.apply(event)
            if not ready.is_set() and await caught_up(consumer, end):
                log.info(
                    "knowledge caught up",
                    wabas=len(knowledge.wabas),
                    recipients=len(knowledge.recipients),
                )
                ready.set()
    finally:
        await consumer.stop()


async def caught_up(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, last in end.items():
        if await consumer.position(tp) < last:
            return False
    return True


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise MissingTopicError(f"topic {topic} does not exist; run `mmbus topics create`")
    return set(parts)
