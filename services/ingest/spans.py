"""Ingest's spans: one per webhook request, one per raw record normalised, one per event.

A webhook is a trace of its own, started by the receiver (Meta sends no trace
context, and one from the internet would not be trusted anyway). The raw record
carries it in its headers, so the normaliser's span for that record continues it,
and each event derived from it carries it on. A status or click is caused by a
send but is not part of it (it comes minutes or days later, and Meta may deliver
it twice): it gets a span *link* to the send's trace, found by
:class:`services.ingest.send_traces.SendTraces`.

Every helper returns OpenTelemetry's free no-op unless tracing is on, without
building attributes first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import replace

from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from starlette.types import Message as AsgiMessage
from starlette.types import Scope, Send

from mmbus.contracts.codec import KafkaRecord
from mmbus.contracts.envelope import Message
from mmbus.tracing import enabled, extract, inject, span

# Reusable: entering it costs nothing and yields a span whose methods do nothing.
_OFF: AbstractContextManager[trace.Span] = nullcontext(trace.INVALID_SPAN)


@asynccontextmanager
async def webhook_request(scope: Scope, send: Send) -> AsyncIterator[Send]:
    """A SERVER span around one webhook POST; yields the ``send`` to answer through, which
    notes the status code on the span (HTTP server semantic conventions)."""
    if not enabled():
        yield send
        return
    path: str = scope["path"]
    attributes = {"http.request.method": "POST", "http.route": path, "url.path": path}
    with span(f"POST {path}", kind=SpanKind.SERVER, attributes=attributes) as current:

        async def answering(message: AsgiMessage) -> None:
            if message["type"] == "http.response.start":
                status: int = message["status"]
                current.set_attribute("http.response.status_code", status)
                if status >= 500:  # a 4xx is the client's doing, not a server error
                    current.set_status(trace.StatusCode.ERROR)
            await send(message)

        yield answering


def carrying_trace(record: KafkaRecord) -> KafkaRecord:
    """The raw record with the webhook's trace context in its headers."""
    if not enabled():
        return record
    return replace(record, headers=inject(list(record.headers)))


def normalizing(record: ConsumerRecord[bytes, bytes]) -> AbstractContextManager[trace.Span]:
    """A span per raw record (one webhook), continuing the receiver's trace."""
    if not enabled():
        return _OFF
    return span(
        "webhook.received process",
        kind=SpanKind.CONSUMER,
        context=extract(record.headers),
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
        },
    )


def publishing(
    event: Message, topic: str, link: trace.Link | None
) -> AbstractContextManager[trace.Span]:
    """A span per derived event, linked to the send's trace when it has one."""
    if not enabled():
        return _OFF
    return span(
        f"{event.type} publish",
        kind=SpanKind.PRODUCER,
        links=[link] if link is not None else None,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "publish",
            "messaging.destination.name": topic,
            "mmbus.event_id": event.id,
            "mmbus.subject": event.subject,
            "mmbus.send_linked": link is not None,
        },
    )
