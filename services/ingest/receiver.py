"""The webhook receiver: verify, write the raw body to Kafka, and only then answer 200.

- ``GET /webhooks/meta``: the subscription challenge (``hub.mode``,
  ``hub.verify_token``, ``hub.challenge``).
- ``POST /webhooks/meta``: 413 over the size limit; 401 for a missing or bad
  ``X-Hub-Signature-256`` (nothing stored); 400 for a signed body that is not
  JSON at all (kept as a dead letter); otherwise the raw record is written
  with an idempotent ``acks=all`` producer and the answer is 200 once Kafka has
  it, 503 when it cannot take it now, so Meta retries. A record Kafka refuses
  for good (its size) gets a 4xx that says why and a dead letter
  (:mod:`services.ingest.refusals`). Unfamiliar content is never refused, JSON
  ``null`` included: normalising it is the normalizer's job.
- ``POST /webhooks/360dialog``: the same, authenticated by the
  ``X-Mmbus-Provider-Secret`` header (360dialog forwards Meta's payloads).

Concurrent requests share one producer, which batches them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mmbus.contracts.codec import encode
from mmbus.contracts.sizes import record_bound
from mmbus.contracts.topics import Stream, topic_name
from mmbus.tracing import enabled
from services.common.logging import get_logger
from services.ingest.asgi import (
    Disconnected,
    TooLarge,
    answer,
    header,
    read_body,
    wanted_headers,
)
from services.ingest.refusals import Refusal, dead_letter, keep_sizes
from services.ingest.settings import IngestSettings
from services.ingest.spans import carrying_trace, webhook_request
from services.ingest.storage import ProducerFactory, Storage
from services.ingest.verification import (
    NOT_JSON,
    Receipt,
    Verdict,
    parse_json,
    raw_record,
    raw_record_bytes,
    same_secret,
    verify_signature,
    waba_of,
)

log = get_logger("mmbus.ingest")
WEBHOOK_PATHS = ("/webhooks/meta", "/webhooks/360dialog")


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


class WebhookReceiver:
    """The receiver as a plain ASGI app: webhook POSTs take a short path, the rest Starlette.

    A webhook POST costs the signature check, one JSON parse (to refuse a body that
    is not JSON and to key the record by WABA) and the record built straight to
    bytes; no framework request object, no model round trip. GET challenge,
    /health and /metrics go through Starlette.
    """

    def __init__(
        self,
        settings: IngestSettings,
        producer: AIOKafkaProducer,
        registry: CollectorRegistry | None = None,
        renew: ProducerFactory | None = None,
    ) -> None:
        self.settings = settings
        self.raw_topic = topic_name(Stream.RAW_WEBHOOKS, settings.topic_prefix)
        self.dead_topic = topic_name(Stream.DEAD_LETTERS, settings.topic_prefix)
        self.secrets = [s.get_secret_value() for s in settings.ingest_app_secrets]
        self.metrics = ReceiverMetrics(registry)
        self.limit = settings.ingest_max_body_bytes
        self.storage = Storage(
            producer, settings.ingest_publish_timeout_s, self.metrics.publish_latency, renew
        )
        self._stored = {
            path: self.metrics.requests.labels(path, "stored") for path in WEBHOOK_PATHS
        }
        self.fallback = Starlette(
            routes=[
                Route("/webhooks/meta", self.meta_get, methods=["GET"]),
                Route("/health", self.health),
                Route("/metrics", self.metrics_endpoint),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in WEBHOOK_PATHS:
            if not enabled():  # no span, not even a no-op context manager, per webhook
                await self.post(scope, receive, send)
                return
            async with webhook_request(scope, send) as answering:
                await self.post(scope, receive, answering)
            return
        await self.fallback(scope, receive, send)

    # -- webhooks
    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/webhooks/meta":
            await self.receive(scope, receive, send, "meta")
        else:
            await self.provider_post(scope, receive, send)

    async def provider_post(self, scope: Scope, receive: Receive, send: Send) -> None:
        expected = self.settings.ingest_provider_secret
        given = header(scope, b"x-mmbus-provider-secret")
        if expected is None or not same_secret(given, expected.get_secret_value()):
            self.metrics.requests.labels(scope["path"], "provider_secret_invalid").inc()
            await answer(send, 401, b"provider secret missing or wrong")
            return
        await self.receive(scope, receive, send, "360dialog", "not_required")

    async def receive(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        source: Literal["meta", "360dialog"],
        verdict: Verdict | None = None,
    ) -> None:
        path: str = scope["path"]
        headers = wanted_headers(scope)
        declared = headers.get(b"content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.limit:
                raise TooLarge
            body = await read_body(receive, self.limit)
        except TooLarge:
            self.metrics.requests.labels(path, "too_large").inc()
            await answer(send, 413, f"body over {self.limit} bytes".encode())
            return
        except Disconnected:
            self.metrics.requests.labels(path, "disconnected").inc()
            return
        key_index = None
        if verdict is None:
            signature = headers.get(b"x-hub-signature-256")
            verdict, key_index = verify_signature(body, signature, self.secrets)
            if verdict != "valid":
                self.metrics.requests.labels(path, f"signature_{verdict}").inc()
                log.warning("webhook refused", path=path, signature=verdict, bytes=len(body))
                await answer(send, 401, f"signature {verdict}".encode())
                return
        parsed = parse_json(body)
        facts: Receipt = {
            "received_at": datetime.now(UTC),
            "source": source,
            "path": path,
            "verdict": verdict,
            "key_index": key_index,
            "content_type": headers.get(b"content-type"),
        }
        try:
            if parsed is NOT_JSON:
                record = raw_record(body, parsed=None, **facts)
                letter = dead_letter(
                    record,
                    body,
                    reason="invalid_json",
                    detail="a signed webhook body that is not JSON",
                )
                if await self.storage.store(self.dead_topic, encode(letter)) is not None:
                    # Within the limit, its base64 fits the dead-letter topic unless that
                    # topic was made smaller than the catalogue says.
                    log.error("dead letter refused by kafka", path=path, bytes=len(body))
                self.metrics.requests.labels(path, "not_json").inc()
                await answer(send, 400, b"body is not JSON")
                return
            raw = raw_record_bytes(body, waba_id=waba_of(parsed), **facts)
            # The normalizer continues the webhook's trace from the record's headers.
            refused = await self.storage.store(self.raw_topic, carrying_trace(raw))
            if refused is not None:
                await self.refused(send, path, body, parsed, facts, refused)
                return
        except (KafkaError, TimeoutError) as exc:
            self.metrics.requests.labels(path, "unavailable").inc()
            log.error("kafka unavailable; answering 503", error=type(exc).__name__, path=path)
            await answer(send, 503, b"storage unavailable, retry later")
            return
        self._stored[path].inc()
        await answer(send, 200, b"EVENT_RECEIVED")

    async def refused(
        self, send: Send, path: str, body: bytes, parsed: object, facts: Receipt, why: Refusal
    ) -> None:
        """Kafka will never take this record: keep what fits as a dead letter, say why.

        Raises like ``Storage.store`` when the dead letter cannot be written now.
        """
        record = raw_record(body, parsed=parsed, **facts)
        kept = None
        for keep in keep_sizes(len(body), record_bound(self.limit)):
            letter = dead_letter(record, body, reason=why.reason, detail=why.detail, keep=keep)
            if await self.storage.store(self.dead_topic, encode(letter)) is None:
                kept = keep
                break
        self.metrics.requests.labels(path, "refused_by_kafka").inc()
        log.error(
            "kafka refuses the record for good",
            path=path,
            reason=why.reason,
            bytes=len(body),
            dead_letter_kept_bytes=kept,
        )
        await answer(send, why.status, why.detail.encode())

    # -- the rest, through Starlette
    async def meta_get(self, request: Request) -> Response:
        q = request.query_params
        expected = self.settings.ingest_verify_token.get_secret_value()
        if (
            q.get("hub.mode") == "subscribe"
            and expected
            and same_secret(q.get("hub.verify_token"), expected)
        ):
            return PlainTextResponse(q.get("hub.challenge", ""))
        return PlainTextResponse("verification failed", status_code=403)

    async def health(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(self, _: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_receiver(
    settings: IngestSettings,
    producer: AIOKafkaProducer,
    registry: CollectorRegistry | None = None,
    renew: ProducerFactory | None = None,
) -> WebhookReceiver:
    """``renew`` makes a new producer when Kafka's refusal of a record leaves the current
    one unable to go on (:mod:`services.ingest.storage`)."""
    return WebhookReceiver(settings, producer, registry, renew)


__all__ = ["WebhookReceiver", "create_receiver"]
