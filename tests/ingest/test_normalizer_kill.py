"""The FastStream normalizer under kill -9: every raw record's events end up on their streams.

A child process normalises a raw stream of status webhooks (and a few records
that are not webhooks) and is killed with SIGKILL part-way. A second run with
the same consumer group finishes the job. Offsets are committed only after a
batch's events are acknowledged, so nothing is missing; what the killed run
wrote but did not commit is written again with the same ids.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer

from mmbus.contracts.codec import encode
from mmbus.contracts.envelope import derive_id
from mmbus.contracts.topics import Stream, topic_name
from mmbus.contracts.webhook_events import DeadLetterRecorded, MessageStatus, WebhookReceived
from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings
from services.ingest.normalizer import Normalizer
from services.ingest.settings import IngestSettings
from tests.sender.support import read_stream

WEBHOOKS = 3_000
NOT_WEBHOOKS = (b"{not json", b'{"type": "send.template", "version": 1}')
CHILD = """
import asyncio
from services.ingest.normalizer import Normalizer
from services.ingest.settings import IngestSettings
asyncio.run(Normalizer(IngestSettings()).run(asyncio.Event()))
"""


def _webhook(i: int) -> WebhookReceived:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550001111",
                                "phone_number_id": "106540352242922",
                            },
                            "statuses": [
                                {
                                    "id": f"wamid.kill{i}",
                                    "status": "delivered",
                                    "timestamp": str(1772442898 + i),
                                    "recipient_id": "447911123456",
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    now = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
    return WebhookReceived.model_validate(
        {
            "id": derive_id("webhook.received", {"n": i}),
            "time": now,
            "source": "test",
            "subject": "102290129340398",
            "data": {
                "received_at": now,
                "source": "meta",
                "path": "/webhooks/meta",
                "body": orjson.dumps(body).decode(),
                "body_encoding": "utf-8",
                "signature": "valid",
                "signature_key_index": 0,
                "content_type": "application/json",
                "waba_id": "102290129340398",
            },
        }
    )


async def _write_raw(settings: CommonSettings) -> None:
    producer = AIOKafkaProducer(acks="all", linger_ms=5, **settings.kafka_producer_options())
    await producer.start()
    try:
        topic = topic_name(Stream.RAW_WEBHOOKS, settings.topic_prefix)
        futures = []
        for i in range(WEBHOOKS):
            record = encode(_webhook(i))
            futures.append(
                await producer.send(topic, record.value, key=record.key, headers=record.headers)
            )
            if i in (WEBHOOKS // 3, 2 * WEBHOOKS // 3):
                bad = NOT_WEBHOOKS[i > WEBHOOKS // 2]
                futures.append(await producer.send(topic, bad, key=b"102290129340398"))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def test_a_normalizer_killed_mid_stream_loses_nothing_and_rewrites_with_the_same_ids(
    kafka_settings: CommonSettings,
) -> None:
    await ensure_project_topics(kafka_settings)
    await _write_raw(kafka_settings)
    group = f"{kafka_settings.topic_prefix}normalizer"
    env = {
        **os.environ,
        "MMBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "MMBUS_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "MMBUS_PARTITIONS": str(kafka_settings.partitions),
        "MMBUS_NORMALIZER_GROUP_ID": group,
        "MMBUS_LOG_LEVEL": "WARNING",
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # Kill it once it has written some of the events, not all.
        before = await read_stream(
            kafka_settings, Stream.MESSAGE_STATUS, until=lambda ms: len(ms) >= WEBHOOKS // 4
        )
    finally:
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 30)
    assert len(before) < WEBHOOKS, "killed before the end (else this test proves nothing)"

    settings = IngestSettings.model_validate(
        {**kafka_settings.model_dump(), "normalizer_group_id": group}
    )
    normalizer = Normalizer(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(normalizer.run(stop))
    try:
        statuses = await read_stream(
            kafka_settings,
            Stream.MESSAGE_STATUS,
            until=lambda ms: len({m.id for m in ms}) >= WEBHOOKS,
        )
        dead = await read_stream(
            kafka_settings, Stream.DEAD_LETTERS, until=lambda ms: len({m.id for m in ms}) >= 2
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    assert all(isinstance(m, MessageStatus) for m in statuses)
    wamids = Counter(m.data.wamid for m in statuses if isinstance(m, MessageStatus))
    assert set(wamids) == {f"wamid.kill{i}" for i in range(WEBHOOKS)}
    # A status written twice (by the killed run, then again) carries one id.
    assert len({m.id for m in statuses}) == WEBHOOKS
    reasons = {m.data.reason for m in dead if isinstance(m, DeadLetterRecorded)}
    assert reasons == {"invalid_json", "invalid_message"}
    assert normalizer.processed <= WEBHOOKS + len(NOT_WEBHOOKS)
