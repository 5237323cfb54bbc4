"""One trace per message: the publisher starts it, the sender continues it, events carry it.

The services are traced with OpenTelemetry's SDK and an in-memory exporter; the
record headers are read back from the real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mmbus.contracts.topics import Stream, topic_name
from mmbus.tracing import extract, inject, link_to
from services.common.settings import CommonSettings
from services.common.tracing import wanted_exporter
from services.simulator.server import SimulatorThread
from services.simulator.settings import SimulatorSettings
from tests.observability.tracing_support import of_trace, recording
from tests.sender.support import command, publish, read_stream, running_sender, sender_settings
from tests.simulator.support import NUMBER, make_world


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recording() as exporter:
        yield exporter


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None),
    ],
)
def test_tracing_is_off_unless_the_standard_variables_ask_for_it(
    env: dict[str, str], expected: str | None
) -> None:
    assert wanted_exporter(env) == expected


def test_headers_carry_the_context_and_give_it_back(spans: InMemorySpanExporter) -> None:
    from mmbus.tracing import tracer

    assert inject([("ce_id", b"1")]) == [("ce_id", b"1")], "no span: nothing is written"
    with tracer.start_as_current_span("origin") as span:
        headers = inject([("ce_id", b"1"), ("traceparent", b"stale")])
    names = [name for name, _ in headers]
    assert names.count("traceparent") == 1
    carried = link_to(headers)
    assert carried is not None
    assert carried.context.trace_id == span.get_span_context().trace_id
    assert extract([]) == extract(None)


async def test_one_command_is_one_trace_from_publish_to_its_result(
    kafka_settings: CommonSettings, spans: InMemorySpanExporter
) -> None:
    with SimulatorThread(SimulatorSettings(), make_world(pair_limit_s=0.0)) as sim:
        await publish(kafka_settings, [command(NUMBER, "447911123401")])
        async with running_sender(sender_settings(kafka_settings, sim.base_url)):
            events = await read_stream(
                kafka_settings,
                Stream.SEND_EVENTS,
                until=lambda ms: any(m.type == "send.accepted" for m in ms),
            )
    finished = spans.get_finished_spans()
    (published,) = [s for s in finished if s.name == "send.template publish"]
    assert published.kind == SpanKind.PRODUCER
    assert published.context is not None
    trace_id = published.context.trace_id
    names = {s.name for s in of_trace(finished, trace_id)}
    assert {
        "send.template publish",
        "send.template process",
        "send.decide",
        "send.pace",
        "send.attempt",
        "POST",
        "send.attempted publish",
        "send.accepted publish",
    } <= names
    (process,) = [s for s in of_trace(finished, trace_id) if s.name == "send.template process"]
    assert process.parent is not None
    assert process.parent.span_id == published.context.span_id, "continued from the headers"
    assert process.attributes is not None
    assert process.attributes["mmbus.outcome"] == "send.accepted"
    assert process.attributes["mmbus.route"] == "marketing_messages"
    (call,) = [s for s in of_trace(finished, trace_id) if s.name == "POST"]
    assert call.kind == SpanKind.CLIENT
    assert call.attributes is not None
    assert call.attributes["http.response.status_code"] == 200
    assert {e.type for e in events} == {"send.attempted", "send.accepted"}
    assert len(events) == 2
    for headers in await _headers_of(kafka_settings, Stream.SEND_EVENTS, 2):
        carried = link_to(headers)
        assert carried is not None, "every send event carries the command's trace"
        assert carried.context.trace_id == trace_id


async def _headers_of(
    settings: CommonSettings, stream: Stream, count: int
) -> list[list[tuple[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        topic_name(stream, settings.topic_prefix),
        auto_offset_reset="earliest",
        **settings.kafka_client_options(),
    )
    await consumer.start()
    out: list[list[tuple[str, bytes]]] = []
    try:
        async with asyncio.timeout(30):
            while len(out) < count:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    out.extend(list(r.headers) for r in records)
    finally:
        await consumer.stop()
    return out
