"""Publishing send commands correctly, for services written in Python.

    from mmbus import KafkaConnection, SendCommandPublisher, send_template

    command = send_template(
        waba_id="102290129340398",
        phone_number_id="106540352242922",
        to="+44 7911 123456",
        template_name="spring_sale",
        language="en_US",
        category="MARKETING",
        campaign_id="spring-2026",
        source="crm/campaigns",
    )
    async with SendCommandPublisher.from_settings(KafkaConnection()) as publisher:
        await publisher.publish(command)

The helper picks the topic (``<prefix>send.commands``), the key (the business
phone number id, so one number's commands stay ordered on one partition), the
CloudEvents headers, and an idempotent ``acks=all`` producer. ``publish``
returns once the broker has the command. Re-publishing the same ``command_id``
is safe: the sender sends each command id at most once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from opentelemetry.trace import SpanKind

from mmbus.connection import KafkaConnection
from mmbus.contracts.codec import encode
from mmbus.contracts.commands import SendTemplate, SendTemplateData
from mmbus.contracts.topics import Stream
from mmbus.tracing import inject, span


def send_template(
    *,
    waba_id: str,
    phone_number_id: str,
    to: str,
    template_name: str,
    language: str,
    source: str,
    command_id: str | None = None,
    components: tuple[dict[str, Any], ...] | list[dict[str, Any]] = (),
    category: str | None = None,
    correlation_id: str | None = None,
    time: datetime | None = None,
    **options: Any,
) -> SendTemplate:
    """Build a validated ``send.template`` command (raises ValidationError on bad input).

    ``options`` are the other fields of the command: provider, route,
    product_policy, message_activity_sharing, bid_multiplier, ttl_seconds,
    not_after, campaign_id, labels, callback_data. Without ``command_id`` a
    random UUID is used; pass your own (e.g. derived from your order id) to make
    retries of your publish idempotent end to end.
    """
    cid = command_id or str(uuid.uuid4())
    data = SendTemplateData.model_validate(
        {
            "command_id": cid,
            "waba_id": waba_id,
            "phone_number_id": phone_number_id,
            "to": to,
            "template": {
                "name": template_name,
                "language": {"code": language},
                "components": list(components),
                "category": category,
            },
            **options,
        }
    )
    return SendTemplate(
        id=data.command_id,
        time=time or datetime.now(UTC),
        source=source,
        subject=data.command_id,
        correlation_id=correlation_id or data.command_id,
        data=data,
    )


class SendCommandPublisher:
    """Publishes send commands to the command stream with an idempotent producer."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, *, owns_producer: bool) -> None:
        self._producer = producer
        self._topic = topic
        self._owns_producer = owns_producer

    @classmethod
    def from_settings(cls, settings: KafkaConnection) -> SendCommandPublisher:
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            client_id="mmbus-command-publisher",
            **settings.kafka_producer_options(),
        )
        return cls(
            producer,
            settings.topic(Stream.SEND_COMMANDS),
            owns_producer=True,
        )

    @property
    def topic(self) -> str:
        return self._topic

    async def __aenter__(self) -> SendCommandPublisher:
        if self._owns_producer:
            try:
                await self._producer.start()
            except BaseException:
                # A producer that failed to start still holds a client; close it quietly.
                await self._producer.stop()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_producer:
            await self._producer.stop()

    async def publish(self, command: SendTemplate) -> RecordMetadata:
        """Write one command; returns once the broker acknowledged it (acks=all).

        With an OpenTelemetry SDK configured, a ``send.template publish`` span starts
        (or continues) the command's trace and its context travels in the headers.
        """
        with _publish_span(command):
            record = encode(command)
            return await self._producer.send_and_wait(
                self._topic, value=record.value, key=record.key, headers=inject(record.headers)
            )

    async def publish_many(self, commands: list[SendTemplate]) -> list[RecordMetadata]:
        """Write many commands pipelined; returns when every one is acknowledged."""
        futures = []
        for command in commands:
            with _publish_span(command):
                record = encode(command)
                futures.append(
                    await self._producer.send(
                        self._topic,
                        value=record.value,
                        key=record.key,
                        headers=inject(record.headers),
                    )
                )
        return [await f for f in futures]


def _publish_span(command: SendTemplate) -> Any:
    return span(
        "send.template publish",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "mmbus.command_id": command.data.command_id,
            "mmbus.campaign_id": command.data.campaign_id or "",
        },
    )
