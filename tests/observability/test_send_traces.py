"""The normalizer's memory of sends: which keys it learns, what it links, what it forgets.

No broker: records are built as the sender and the publisher write them (their
headers carry the trace context of the span they were written in).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext

from mmbus.contracts.codec import encode
from mmbus.contracts.envelope import Message
from mmbus.tracing import inject, tracer
from services.common.settings import CommonSettings
from services.ingest.send_traces import SendTraces
from tests.observability.tracing_support import recording
from tests.projections import events as ev


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recording() as exporter:
        yield exporter


def _written(event: Message, *, traced: bool = True) -> tuple[ConsumerRecord[bytes, bytes], int]:
    """The record as a traced writer puts it on Kafka, and the span id it was written in."""
    with tracer.start_as_current_span(f"{event.type} publish") as span:
        record = encode(event)
        headers = inject(record.headers) if traced else record.headers
    consumed = ConsumerRecord(
        topic="t",
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=record.key,
        value=record.value,
        checksum=None,
        serialized_key_size=len(record.key),
        serialized_value_size=len(record.value),
        headers=tuple(headers),
    )
    return consumed, span.get_span_context().span_id


def _traces(capacity: int = 100) -> SendTraces:
    return SendTraces(CommonSettings(), "p.", capacity=capacity, lookback_s=0)


def _linked(traces: SendTraces, event: Message) -> tuple[SpanContext, str]:
    link = traces.link_for(event)
    assert link is not None, f"{event.type} {event.subject} is not linked"
    assert link.attributes is not None
    return link.context, str(link.attributes["mmbus.join"])


def test_a_status_links_to_the_accepted_send_by_callback_data_else_by_wamid(
    spans: InMemorySpanExporter,
) -> None:
    traces = _traces()
    attempted, _ = _written(ev.attempted(1))
    accepted, accepted_span = _written(ev.accepted(1))
    traces.learn([attempted, accepted])
    context, join = _linked(traces, ev.status(1, "delivered", 4))
    assert (context.span_id, join) == (accepted_span, "biz_opaque_callback_data")
    # A status without callback data (n=None) still finds the send through its wamid.
    context, join = _linked(traces, ev.status(None, "read", 5, wamid="wamid.1"))
    assert (context.span_id, join) == (accepted_span, "wamid")
    assert traces.link_for(ev.status(2, "sent", 3)) is None, "another send: no link"
    assert traces.misses([ev.status(2, "sent", 3)])
    assert not traces.misses([ev.status(1, "sent", 3), ev.terms_signed(ev.WABA, "1", 0)])


def test_a_click_links_to_the_command_that_declared_its_tracking_token(
    spans: InMemorySpanExporter,
) -> None:
    traces = _traces()
    command, command_span = _written(ev.command(3, labels={"tracking_token": "tok-3"}))
    unlabelled, _ = _written(ev.command(4))
    traces.learn([command, unlabelled])
    context, join = _linked(traces, ev.click("tok-3", 3))
    assert (context.span_id, join) == (command_span, "tracking_token")
    assert traces.link_for(ev.click("tok-other", 4)) is None
    assert len(traces) == 1, "a command teaches only its tracking token"


def test_memory_is_bounded_and_untraced_records_teach_nothing(
    spans: InMemorySpanExporter,
) -> None:
    traces = _traces(capacity=4)
    untraced, _ = _written(ev.accepted(9), traced=False)
    traces.learn([untraced])
    assert len(traces) == 0
    for n in range(1, 4):  # two keys each (command id, wamid): the first send is evicted
        traces.learn([_written(ev.accepted(n))[0]])
    assert len(traces) == 4
    assert traces.link_for(ev.status(1, "read", 5)) is None
    assert traces.link_for(ev.status(3, "read", 5)) is not None


def test_without_an_sdk_the_helpers_add_nothing() -> None:
    # A fresh interpreter: this one has the tests' SDK installed for good.
    code = textwrap.dedent(
        """
        from contextlib import nullcontext
        from mmbus.contracts.codec import encode
        from mmbus.tracing import enabled
        from services.ingest import spans
        from services.projections.spans import batch_span
        from tests.projections import events as ev

        assert not enabled()
        record = encode(ev.accepted(1))
        assert spans.carrying_trace(record) is record, "no traceparent added"
        assert isinstance(spans.publishing(ev.status(1, "sent", 3), "t", None), nullcontext)
        assert isinstance(batch_span("live", {"tp": [record]}), nullcontext)
        print("ok")
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
