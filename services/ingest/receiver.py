"""The webhook receiver: verify, write the raw body to Kafka, and only then answer 200.

- ``GET /webhooks/meta``: the subscription challenge (``hub.mode``,
  ``hub.verify_token``, ``hub.challenge``).
- ``POST /webhooks/meta``: 413 over the size limit; 401 for a missing or bad
  ``X-Hub-Signature-256`` (nothing stored); 400 for a signed body that is not
  JSON at all (kept as a dead letter); otherwise the raw record is written
  with an idempotent ``acks=all`` producer and the answer is 200 once Kafka has
  it, 503 when it cannot take it, so Meta retries. Unfamiliar content is never
  refused: normalising it is the normalizer's job.
- ``POST /webhooks/360dialog``: the same, authenticated by the
  ``X-Mmbus-Provider-Secret`` header (360dialog forwards Meta's payloads).

Concurrent requests share one producer, which batches them.
"""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from typing import Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.common.logging import get_logger
from services.contracts.codec import encode
from services.contracts.envelope import Message, derive_id
from services.contracts.topics import Stream, topic_name
from services.contracts.webhook_events import DeadLetterRecorded
from services.ingest.settings import IngestSettings
from services.ingest.verification import (
    SOURCE,
    Verdict,
    parse_json,
    raw_record,
    same_secret,
    verify_signature,
)

log = get_logger("mmbus.ingest")


class TooLarge(Exception):
    pass


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "mmbus_ingest_requests_total",
            "Webhook requests by path and outcome.",
            ["path", "outcome"],
            registry=self.registry,
        )
        self.publish_latency = Histogram(
            "mmbus_ingest_publish_seconds",
            "Time to a Kafka acknowledgement of the raw record.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=self.registry,
        )


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_receiver(
    settings: IngestSettings, producer: AIOKafkaProducer, registry: CollectorRegistry | None = None
) -> Starlette:
    raw_topic = topic_name(Stream.RAW_WEBHOOKS, settings.topic_prefix)
    dead_topic = topic_name(Stream.DEAD_LETTERS, settings.topic_prefix)
    secrets = [s.get_secret_value() for s in settings.ingest_app_secrets]
    metrics = ReceiverMetrics(registry)

    async def publish(topic: str, message: Message) -> None:
        record = encode(message)
        started = time.perf_counter()
        future = await producer.send(
            topic, value=record.value, key=record.key, headers=record.headers
        )
        await asyncio.wait_for(future, settings.ingest_publish_timeout_s)
        metrics.publish_latency.observe(time.perf_counter() - started)

    async def receive(
        request: Request, source: Literal["meta", "360dialog"], verdict: Verdict | None
    ) -> Response:
        path = request.url.path
        try:
            body = await _read_limited(request, settings.ingest_max_body_bytes)
        except TooLarge:
            metrics.requests.labels(path, "too_large").inc()
            return PlainTextResponse(
                f"body over {settings.ingest_max_body_bytes} bytes", status_code=413
            )
        except ClientDisconnect:
            metrics.requests.labels(path, "disconnected").inc()
            return Response(status_code=400)
        key_index = None
        if verdict is None:
            verdict, key_index = verify_signature(
                body, request.headers.get("x-hub-signature-256"), secrets
            )
            if verdict != "valid":
                metrics.requests.labels(path, f"signature_{verdict}").inc()
                log.warning("webhook refused", path=path, signature=verdict, bytes=len(body))
                return PlainTextResponse(f"signature {verdict}", status_code=401)
        now = datetime.now(UTC)
        parsed = parse_json(body)
        record = raw_record(
            body,
            received_at=now,
            source=source,
            path=path,
            verdict=verdict,
            key_index=key_index,
            content_type=request.headers.get("content-type"),
            parsed=parsed,
        )
        try:
            if parsed is None:
                await publish(dead_topic, _dead_letter(record, body))
                metrics.requests.labels(path, "not_json").inc()
                return PlainTextResponse("body is not JSON", status_code=400)
            await publish(raw_topic, record)
        except (KafkaError, TimeoutError) as exc:
            metrics.requests.labels(path, "unavailable").inc()
            log.error("kafka unavailable; answering 503", error=type(exc).__name__, path=path)
            return PlainTextResponse("storage unavailable, retry later", status_code=503)
        metrics.requests.labels(path, "stored").inc()
        return PlainTextResponse("EVENT_RECEIVED")

    async def meta_get(request: Request) -> Response:
        q = request.query_params
        expected = settings.ingest_verify_token.get_secret_value()
        if (
            q.get("hub.mode") == "subscribe"
            and expected
            and same_secret(q.get("hub.verify_token"), expected)
        ):
            return PlainTextResponse(q.get("hub.challenge", ""))
        return PlainTextResponse("verification failed", status_code=403)

    async def meta_post(request: Request) -> Response:
        return await receive(request, "meta", None)

    async def provider_post(request: Request) -> Response:
        expected = settings.ingest_provider_secret
        if expected is None or not same_secret(
            request.headers.get("x-mmbus-provider-secret"), expected.get_secret_value()
        ):
            metrics.requests.labels(request.url.path, "provider_secret_invalid").inc()
            return PlainTextResponse("provider secret missing or wrong", status_code=401)
        return await receive(request, "360dialog", "not_required")

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(_: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/webhooks/meta", meta_get, methods=["GET"]),
            Route("/webhooks/meta", meta_post, methods=["POST"]),
            Route("/webhooks/360dialog", provider_post, methods=["POST"]),
            Route("/health", health),
            Route("/metrics", metrics_endpoint),
        ]
    )
    app.state.metrics = metrics
    return app


def _dead_letter(record: Message, body: bytes) -> DeadLetterRecorded:
    return DeadLetterRecorded.model_validate(
        {
            "id": derive_id("dead_letter.recorded", {"raw": record.id}),
            "time": record.time,
            "source": SOURCE,
            "subject": record.subject,
            "data": {
                "source_topic": "http:" + record.data.path,
                "partition": -1,
                "offset": -1,
                "value_b64": base64.b64encode(body).decode(),
                "reason": "invalid_json",
                "detail": "a signed webhook body that is not JSON",
                "consumer": "mmbus-ingest",
            },
        }
    )


__all__ = ["create_receiver"]
