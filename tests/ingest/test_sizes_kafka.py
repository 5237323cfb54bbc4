"""Sizes on the real broker: what the limit allows is stored and typed, what it does not is
refused clearly, and a record Kafka refuses for good is a 4xx and a dead letter, not 503."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import SecretStr

from mmbus.contracts.sizes import DEFAULT_MAX_BODY_BYTES, WEBHOOK_MAX_MESSAGE_BYTES
from mmbus.contracts.topics import Stream, topic_name
from mmbus.contracts.webhook_events import DeadLetterRecorded, MessageReceived, WebhookReceived
from services.common.kafka_admin import ensure_project_topics, topic_max_message_bytes
from services.common.ports import free_port
from services.common.settings import CommonSettings
from services.ingest.capacity import IngestCapacityError
from services.ingest.main import run_ingest
from services.ingest.receiver import create_receiver
from services.ingest.settings import IngestSettings
from tests.ingest.test_receiver import NEW, ingest_settings, signed
from tests.sender.support import read_stream
from tests.waiting import eventually

WABA, NUMBER = "102290129340398", "106540352242922"


def inbound(text: str, wamid: str = "wamid.BIG") -> bytes:
    message = {"from": "447911123456", "id": wamid, "timestamp": "1772454600", "type": "text"}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
        "messages": [{**message, "text": {"body": text}}],
    }
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}],
        }
    )


async def test_a_3_mib_body_of_quotes_is_stored_and_typed_and_over_the_limit_is_413(
    kafka_settings: CommonSettings,
) -> None:
    port = free_port()
    settings = IngestSettings.model_validate(
        {
            **kafka_settings.model_dump(),
            "ingest_app_secrets": [SecretStr(NEW)],
            "ingest_port": port,
            "normalizer_group_id": f"{kafka_settings.topic_prefix}normalizer",
        }
    )
    assert settings.ingest_max_body_bytes == DEFAULT_MAX_BODY_BYTES
    quotes = '"' * (3 * 1024 * 1024 // 2)  # each is \" in the body: 3 MiB, 6 MiB as a string
    body = inbound(quotes)
    assert len(body) > 3 * 1024 * 1024
    over = inbound("a" * DEFAULT_MAX_BODY_BYTES)
    stop = asyncio.Event()
    ingest = asyncio.create_task(run_ingest(settings, stop))
    try:
        transport = httpx.AsyncHTTPTransport(retries=10)  # until the receiver listens
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, transport=transport
        ) as client:
            assert (await client.get("/health")).status_code == 200
            stored = await client.post("/webhooks/meta", content=body, headers=signed(body))
            too_large = await client.post("/webhooks/meta", content=over, headers=signed(over))
        (raw,) = await read_stream(kafka_settings, Stream.RAW_WEBHOOKS, until=lambda m: m)
        (typed,) = await read_stream(kafka_settings, Stream.INBOUND_MESSAGES, until=lambda m: m)
    finally:
        stop.set()
        await asyncio.wait_for(ingest, 30)
    assert (stored.status_code, too_large.status_code) == (200, 413)
    assert isinstance(raw, WebhookReceived)
    assert raw.data.body.encode() == body, "stored exactly"
    assert isinstance(typed, MessageReceived)
    assert typed.data.message["text"]["body"] == quotes, "typed, the text whole"
    sizes = await topic_max_message_bytes(
        [topic_name(Stream.RAW_WEBHOOKS, kafka_settings.topic_prefix)],
        kafka_settings.kafka_client_options(),
    )
    assert list(sizes.values()) == [WEBHOOK_MAX_MESSAGE_BYTES]


async def test_a_limit_the_topic_cannot_hold_stops_ingest_at_start(
    kafka_settings: CommonSettings,
) -> None:
    settings = ingest_settings(
        kafka_settings, ingest_max_body_bytes=64 * 1024 * 1024, ingest_port=free_port()
    )
    with pytest.raises(IngestCapacityError) as refused:
        await asyncio.wait_for(run_ingest(settings, asyncio.Event()), 60)
    message = str(refused.value)
    assert "67108864" in message, "the limit"
    assert str(WEBHOOK_MAX_MESSAGE_BYTES) in message, "what the topic takes"
    assert topic_name(Stream.RAW_WEBHOOKS, kafka_settings.topic_prefix) in message


async def _set_max_message_bytes(settings: CommonSettings, topic: str, size: int) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(size)})]
        )
    finally:
        await admin.close()
    options = settings.kafka_client_options()

    async def applied() -> bool:  # configs apply asynchronously: until the broker says so
        return await topic_max_message_bytes([topic], options) == {topic: size}

    await eventually(applied, within_s=10, what=f"{topic} taking max.message.bytes={size}")


@asynccontextmanager
async def lingering_receiver(settings: IngestSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A receiver whose producer waits 200 ms: concurrent webhooks share a batch."""

    async def start() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            acks="all", enable_idempotence=True, linger_ms=200, **settings.kafka_producer_options()
        )
        await producer.start()
        return producer

    app = create_receiver(settings, await start(), renew=start)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client
    finally:
        await app.storage.close()


async def test_a_record_kafka_refuses_for_good_is_413_and_a_dead_letter_not_503(
    kafka_settings: CommonSettings,
) -> None:
    settings = ingest_settings(kafka_settings)  # a 64 KiB limit: records up to 192 KiB
    await ensure_project_topics(settings)
    raw_topic = topic_name(Stream.RAW_WEBHOOKS, settings.topic_prefix)
    # An operator lowered the topic's limit after ingest started (its check passed).
    await _set_max_message_bytes(kafka_settings, raw_topic, 20_000)
    # Random text: the broker checks batches as stored, compressed.
    big = inbound(secrets.token_urlsafe(40_000))
    small, later = inbound("hi", "wamid.S"), inbound("ok", "wamid.L")

    async def post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
        return await client.post("/webhooks/meta", content=body, headers=signed(body))

    async with lingering_receiver(settings) as client:
        refused, beside = await asyncio.gather(post(client, big), post(client, small))
        # After the refusals, the same partition again: a refused batch must not have
        # left the producer unable to go on (OutOfOrderSequenceNumber, then 503 forever).
        after = await post(client, later)
        metrics = (await client.get("/metrics")).text
    assert refused.status_code == 413, refused.text
    assert "max.message.bytes" in refused.text
    assert (beside.status_code, after.status_code) == (200, 200), "others are not refused"
    assert 'outcome="refused_by_kafka"' in metrics
    (letter,) = await read_stream(kafka_settings, Stream.DEAD_LETTERS, until=lambda m: m)
    assert isinstance(letter, DeadLetterRecorded)
    assert letter.data.reason == "record_too_large"
    assert base64.b64decode(letter.data.value_b64 or "") == big, "the whole body kept"
    stored: list[Any] = await read_stream(
        kafka_settings, Stream.RAW_WEBHOOKS, until=lambda m: len(m) >= 2
    )
    assert sorted(m.data.body.encode() for m in stored) == sorted([small, later])


async def test_topics_made_before_the_sizes_are_raised_keeping_their_other_settings(
    kafka_settings: CommonSettings,
) -> None:
    raw_topic = topic_name(Stream.RAW_WEBHOOKS, kafka_settings.topic_prefix)
    admin = AIOKafkaAdminClient(**kafka_settings.kafka_client_options())
    await admin.start()
    try:  # as an older catalogue made it: no max.message.bytes (the broker's 1 MiB)
        await admin.create_topics(
            [
                NewTopic(
                    raw_topic, kafka_settings.partitions, 1, topic_configs={"retention.ms": "-1"}
                )
            ]
        )
    finally:
        await admin.close()
    before = await topic_max_message_bytes([raw_topic], kafka_settings.kafka_client_options())
    assert before[raw_topic] < WEBHOOK_MAX_MESSAGE_BYTES
    result = await ensure_project_topics(kafka_settings)
    assert raw_topic in result.raised
    after = await topic_max_message_bytes([raw_topic], kafka_settings.kafka_client_options())
    assert after == {raw_topic: WEBHOOK_MAX_MESSAGE_BYTES}
    admin = AIOKafkaAdminClient(**kafka_settings.kafka_client_options())
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, raw_topic, {"retention.ms": None})]
        )
    finally:
        await admin.close()
    assert response.resources[0][4][0][1] == "-1", "its own settings kept"
    again = await ensure_project_topics(kafka_settings)
    assert again.raised == (), "raised once; never lowered"
