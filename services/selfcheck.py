"""Show a broker working end to end: create the topics, write a record, read it back."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.common.kafka_admin import EnsureResult, ensure_project_topics
from services.common.settings import CommonSettings


@dataclass(frozen=True)
class SelfCheck:
    topics: EnsureResult
    round_trip_ms: float
    broker_count: int


async def self_check(settings: CommonSettings) -> SelfCheck:
    topics = await ensure_project_topics(settings)
    options = settings.kafka_client_options()
    probe_topic = f"{settings.topic_prefix}_selfcheck"
    admin = AIOKafkaAdminClient(client_id="mmbus-selfcheck", **options)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [
                    NewTopic(
                        probe_topic,
                        num_partitions=1,
                        replication_factor=settings.replication_factor,
                        topic_configs={"retention.ms": "3600000"},
                    )
                ]
            )
    finally:
        await admin.close()
    marker = uuid.uuid4().hex.encode()
    started = time.perf_counter()
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **options)
    await producer.start()
    try:
        sent = await producer.send_and_wait(probe_topic, marker)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **options)
    await consumer.start()
    try:
        tp = TopicPartition(probe_topic, sent.partition)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        record = await consumer.getone()
        if record.value != marker:
            raise RuntimeError("self-check read back a different record than it wrote")
    finally:
        await consumer.stop()
    return SelfCheck(
        topics=topics,
        round_trip_ms=(time.perf_counter() - started) * 1000,
        broker_count=len(cluster.get("brokers", [])),
    )
