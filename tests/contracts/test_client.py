"""The producer helper writes commands where, and how, the sender expects them (real broker)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from mmbus.contracts.codec import decode, header_attributes
from mmbus.contracts.commands import SendTemplate
from mmbus.publisher import SendCommandPublisher, send_template
from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings

NUMBERS = ["106540352242922", "106540352242923", "106540352242924"]


async def test_published_commands_are_keyed_ordered_and_decodable(
    kafka_settings: CommonSettings,
) -> None:
    await ensure_project_topics(kafka_settings)
    commands = [
        send_template(
            waba_id="102290129340398",
            phone_number_id=NUMBERS[i % 3],
            to="+44 7911 123456",
            template_name="spring_sale",
            language="en_US",
            category="MARKETING",
            source="tests",
            campaign_id="c1",
        )
        for i in range(30)
    ]
    async with SendCommandPublisher.from_settings(kafka_settings) as publisher:
        first = await publisher.publish(commands[0])
        rest = await publisher.publish_many(commands[1:])
        topic = publisher.topic
    assert topic == f"{kafka_settings.topic_prefix}send.commands"
    metas = [first, *rest]
    partition_of = {
        c.data.phone_number_id: m.partition for c, m in zip(commands, metas, strict=True)
    }
    for command, meta in zip(commands, metas, strict=True):
        assert meta.partition == partition_of[command.data.phone_number_id], (
            "one number, one partition"
        )

    consumer = AIOKafkaConsumer(
        topic, auto_offset_reset="earliest", **kafka_settings.kafka_client_options()
    )
    await consumer.start()
    seen: list[SendTemplate] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < len(commands):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        message = decode(record.value, record.headers)
                        assert isinstance(message, SendTemplate), message
                        assert record.key == message.data.phone_number_id.encode()
                        attrs = header_attributes(record.headers)
                        assert attrs["ce_type"] == "send.template"
                        assert attrs["ce_id"] == message.id
                        seen.append(message)
    finally:
        await consumer.stop()
    assert sorted(c.id for c in seen) == sorted(c.id for c in commands)
    for number in NUMBERS:
        # Per number, the log order is the publish order.
        assert [c.id for c in seen if c.data.phone_number_id == number] == [
            c.id for c in commands if c.data.phone_number_id == number
        ]
