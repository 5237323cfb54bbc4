"""The projector's span per batch: how many records, from which partitions, linked to their
traces (on the real broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind

from mmbus.contracts.topics import Stream, topic_name
from services.common.settings import CommonSettings
from tests.observability.tracing_support import recording
from tests.projections.support import campaign as campaign_log
from tests.projections.support import caught_up, projector_running, publish_log
from tests.sender.support import command, publish
from tests.simulator.support import NUMBER


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recording() as exporter:
        yield exporter


async def test_each_batch_is_a_span_with_its_size_partitions_and_links(
    kafka_settings: CommonSettings, spans: InMemorySpanExporter
) -> None:
    untraced = campaign_log(3)
    await publish_log(kafka_settings, untraced)  # written without trace context
    await publish(kafka_settings, [command(NUMBER, "447911123401")])  # the helper traces it
    total = len(untraced) + 1
    async with projector_running(kafka_settings, None) as projector:
        await caught_up(projector, total, timeout_s=30)

    finished = spans.get_finished_spans()
    (published,) = [s for s in finished if s.name == "send.template publish"]
    assert published.context is not None
    batches = [s for s in finished if s.name == "projector batch"]
    assert batches, "a span per batch read"
    counts, partitions, links = 0, set[str](), list[Link]()
    for batch in batches:
        assert batch.kind == SpanKind.CONSUMER
        assert batch.attributes is not None
        assert batch.attributes["mmbus.projector"] == "live"
        count = batch.attributes["messaging.batch.message_count"]
        assert isinstance(count, int)
        assert count > 0, "no span for an empty poll"
        counts += count
        named = batch.attributes["mmbus.partitions"]
        assert isinstance(named, tuple)
        partitions |= set(named)
        links += batch.links
    assert counts == total, "every record is counted in exactly one batch"
    commands = topic_name(Stream.SEND_COMMANDS, kafka_settings.topic_prefix)
    assert any(p.startswith(f"{commands}/") for p in partitions)
    assert all(p.rsplit("/", 1)[1].isdigit() for p in partitions)
    # Only the command was written in a trace: it is the one link.
    assert [link.context.span_id for link in links] == [published.context.span_id]
