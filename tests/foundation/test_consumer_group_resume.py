"""The delivery guarantees every service relies on, shown on the real broker."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.common.settings import CommonSettings


async def _create_topic(settings: CommonSettings, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def _consume(consumer: AIOKafkaConsumer, count: int) -> list[bytes]:
    values: list[bytes] = []
    async with asyncio.timeout(30):
        while len(values) < count:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                values.extend(r.value for r in records if r.value is not None)
    return values


def _group_consumer(settings: CommonSettings, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5,
        **settings.kafka_client_options(),
    )


async def test_group_consumer_resumes_after_committed_offset(
    kafka_settings: CommonSettings,
) -> None:
    topic = f"{kafka_settings.topic_prefix}resume"
    group = f"{kafka_settings.topic_prefix}group"
    await _create_topic(kafka_settings, topic, partitions=1)

    producer = AIOKafkaProducer(
        acks="all", enable_idempotence=True, **kafka_settings.kafka_client_options()
    )
    await producer.start()
    try:
        for i in range(20):
            await producer.send(topic, key=b"k", value=f"m{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    first = _group_consumer(kafka_settings, topic, group)
    await first.start()
    try:
        got = await _consume(first, 5)
        # Commit exactly after the fifth record, as a service would after its work is durable.
        await first.commit({TopicPartition(topic, 0): 5})
        # Records read past the commit are not committed: they must be redelivered.
        got += await _consume(first, 3)
    finally:
        await first.stop()
    assert got[:5] == [f"m{i}".encode() for i in range(5)]

    second = _group_consumer(kafka_settings, topic, group)
    await second.start()
    try:
        assert await second.committed(TopicPartition(topic, 0)) == 5
        resumed = await _consume(second, 15)
    finally:
        await second.stop()
    assert resumed == [f"m{i}".encode() for i in range(5, 20)]


async def test_idempotent_producer_keeps_order_and_acks_all(kafka_settings: CommonSettings) -> None:
    topic = f"{kafka_settings.topic_prefix}idem"
    await _create_topic(kafka_settings, topic, partitions=1)
    producer = AIOKafkaProducer(
        acks="all", enable_idempotence=True, **kafka_settings.kafka_client_options()
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value=str(i).encode()) for i in range(200)]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert [m.offset for m in metas] == list(range(200))

    consumer = AIOKafkaConsumer(
        auto_offset_reset="earliest", **kafka_settings.kafka_client_options()
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        values = await _consume(consumer, 200)
    finally:
        await consumer.stop()
    assert values == [str(i).encode() for i in range(200)]
