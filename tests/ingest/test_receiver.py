"""The receiver on the real broker: 200 only after Kafka has the raw body; 401/413/400/503."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from mmbus.contracts.topics import Stream
from mmbus.contracts.webhook_events import DeadLetterRecorded, WebhookReceived
from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings
from services.ingest.normalize import normalize
from services.ingest.receiver import create_receiver
from services.ingest.settings import IngestSettings
from services.localkafka import broker
from services.simulator import webhooks
from tests.sender.support import read_stream

OLD, NEW = "old-app-secret", "new-app-secret"
BODY = webhooks.encode(
    webhooks.status(
        waba_id="102290129340398",
        phone_number_id="106540352242922",
        display_phone_number="1",
        wamid="wamid.X1",
        status="delivered",
        timestamp=1772442910,
        recipient_id="447911123456",
        pricing_category="marketing_lite",
    )
)


def signed(body: bytes, secret: str = NEW) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def ingest_settings(kafka: CommonSettings, **extra: Any) -> IngestSettings:
    return IngestSettings.model_validate(
        {
            **kafka.model_dump(),
            "ingest_app_secrets": [SecretStr(OLD), SecretStr(NEW)],
            "ingest_verify_token": SecretStr("vt-1"),
            "ingest_provider_secret": SecretStr("d360-secret"),
            "ingest_max_body_bytes": 64 * 1024,
            **extra,
        }
    )


@asynccontextmanager
async def receiver(settings: IngestSettings) -> AsyncIterator[httpx.AsyncClient]:
    await ensure_project_topics(settings)
    producer = AIOKafkaProducer(
        acks="all", enable_idempotence=True, linger_ms=2, **settings.kafka_client_options()
    )
    await producer.start()
    try:
        app = create_receiver(settings, producer)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest"
        ) as client:
            yield client
    finally:
        await producer.stop()


async def test_signed_webhook_is_stored_exactly_before_200(kafka_settings: CommonSettings) -> None:
    async with receiver(ingest_settings(kafka_settings)) as client:
        response = await client.post("/webhooks/meta", content=BODY, headers=signed(BODY))
        assert response.status_code == 200
        rotated = await client.post("/webhooks/meta", content=BODY, headers=signed(BODY, OLD))
        assert rotated.status_code == 200, "either app secret verifies (rotation)"
    (first, second) = await read_stream(
        kafka_settings, Stream.RAW_WEBHOOKS, until=lambda m: len(m) >= 2
    )
    assert isinstance(first, WebhookReceived)
    assert first.data.body.encode() == BODY, "the body exactly as received"
    assert (
        first.data.signature,
        first.data.signature_key_index,
        second.data.signature_key_index,
    ) == ("valid", 1, 0)
    assert isinstance(second, WebhookReceived)
    assert first.data.waba_id == "102290129340398"
    assert first.id == second.id, "the same webhook twice has the same raw id"
    assert [e.id for e in normalize(first)] == [e.id for e in normalize(second)]
    (status,) = normalize(first)
    assert status.type == "message.status"
    assert status.data.pricing.category == "marketing_lite"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "invalid"),
        ({"X-Hub-Signature-256": "md5=abc"}, "invalid"),
    ],
)
async def test_bad_or_missing_signature_is_401_and_nothing_is_stored(
    kafka_settings: CommonSettings, headers: dict[str, str], reason: str
) -> None:
    async with receiver(ingest_settings(kafka_settings)) as client:
        refused = await client.post("/webhooks/meta", content=BODY, headers=headers)
        marker = await client.post(
            "/webhooks/meta", content=b'{"entry":[]}', headers=signed(b'{"entry":[]}')
        )
    assert refused.status_code == 401
    assert reason in refused.text
    assert marker.status_code == 200
    stored = await read_stream(kafka_settings, Stream.RAW_WEBHOOKS, until=lambda m: len(m) >= 1)
    assert [m.data.body for m in stored] == ['{"entry":[]}'], "only the signed one was stored"


async def test_size_limit_and_non_json(kafka_settings: CommonSettings) -> None:
    big = b'{"x":"' + b"a" * 70_000 + b'"}'
    async with receiver(ingest_settings(kafka_settings)) as client:
        too_large = await client.post("/webhooks/meta", content=big, headers=signed(big))
        not_json = await client.post("/webhooks/meta", content=b"<xml/>", headers=signed(b"<xml/>"))
        unfamiliar = b'{"object":"something_new","surprise":[1,2]}'
        odd = await client.post("/webhooks/meta", content=unfamiliar, headers=signed(unfamiliar))
    assert too_large.status_code == 413
    assert not_json.status_code == 400
    assert odd.status_code == 200, "unfamiliar content is never refused"
    (dead,) = await read_stream(kafka_settings, Stream.DEAD_LETTERS, until=lambda m: len(m) >= 1)
    assert isinstance(dead, DeadLetterRecorded)
    assert dead.data.reason == "invalid_json"
    assert dead.data.value_b64 == "PHhtbC8+"
    (raw,) = await read_stream(kafka_settings, Stream.RAW_WEBHOOKS, until=lambda m: len(m) >= 1)
    assert isinstance(raw, WebhookReceived)
    assert [e.type for e in normalize(raw)] == ["webhook.unrecognized"]


async def test_verification_challenge_and_provider_path(kafka_settings: CommonSettings) -> None:
    async with receiver(ingest_settings(kafka_settings)) as client:
        ok = await client.get(
            "/webhooks/meta",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "vt-1",
                "hub.challenge": "1158201444",
            },
        )
        wrong = await client.get(
            "/webhooks/meta",
            params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
        )
        provider = await client.post(
            "/webhooks/360dialog", content=BODY, headers={"X-Mmbus-Provider-Secret": "d360-secret"}
        )
        provider_bad = await client.post(
            "/webhooks/360dialog", content=BODY, headers={"X-Mmbus-Provider-Secret": "x"}
        )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert wrong.status_code == 403
    assert provider.status_code == 200
    assert provider_bad.status_code == 401
    (raw,) = await read_stream(kafka_settings, Stream.RAW_WEBHOOKS, until=lambda m: len(m) >= 1)
    assert (raw.data.source, raw.data.signature) == ("360dialog", "not_required")


async def test_broker_down_means_503_and_retries_succeed_after() -> None:
    name = f"pytest-ingest-{uuid.uuid4().hex[:6]}"
    try:
        started = await asyncio.to_thread(broker.up, name, free_ports=True)
        bootstrap = started.instance.bootstrap_servers
        kafka = CommonSettings(kafka_bootstrap_servers=bootstrap, topic_prefix="i.", partitions=1)
        settings = ingest_settings(kafka, ingest_publish_timeout_s=2.0)
        bodies = [
            orjson.dumps(
                {"object": "whatsapp_business_account", "entry": [{"id": str(i), "changes": []}]}
            )
            for i in range(3)
        ]
        async with receiver(settings) as client:
            before = await client.post(
                "/webhooks/meta", content=bodies[0], headers=signed(bodies[0])
            )
            assert before.status_code == 200
            await asyncio.to_thread(broker.down, name, kill=True)
            during = await client.post(
                "/webhooks/meta", content=bodies[1], headers=signed(bodies[1])
            )
            assert during.status_code == 503, "nothing is acknowledged that Kafka does not have"
            await asyncio.to_thread(broker.up, name)
            # Meta retries what was not answered 200; after the broker is back it lands.
            retried = await client.post(
                "/webhooks/meta", content=bodies[1], headers=signed(bodies[1])
            )
            after = await client.post(
                "/webhooks/meta", content=bodies[2], headers=signed(bodies[2])
            )
            assert (retried.status_code, after.status_code) == (200, 200)
        stored = await read_stream(
            kafka,
            Stream.RAW_WEBHOOKS,
            until=lambda m: {x.data.body.encode() for x in m} >= set(bodies),
        )
        assert {x.data.body.encode() for x in stored} == set(bodies), "nothing missing"
    finally:
        await asyncio.to_thread(broker.down, name, purge=True, kill=True)
