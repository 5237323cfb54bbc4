"""The projector's span: one per batch read, linked to (some of) the traces it folds.

A batch mixes records of many traces (commands, sends, webhooks), so it is not a
child of any of them; as OpenTelemetry's messaging conventions say for batch
receiving, it links to them instead: to at most :data:`MAX_LINKS` distinct traces,
found in the first :data:`MAX_SCANNED` records, so a 5,000-record batch does not
cost 5,000 header parses. Off unless tracing is on: no attributes are built, no
header is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext

from aiokafka import ConsumerRecord, TopicPartition
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from mmbus.tracing import enabled, link_to, span

MAX_LINKS = 32
MAX_SCANNED = 512
# Reusable: entering it costs nothing and yields a span whose methods do nothing.
_OFF: AbstractContextManager[trace.Span] = nullcontext(trace.INVALID_SPAN)

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]


def batch_span(projector: str, batch: Batch) -> AbstractContextManager[trace.Span]:
    """A span around folding and storing one non-empty batch."""
    if not batch or not enabled():
        return _OFF
    partitions = sorted(f"{tp.topic}/{tp.partition}" for tp, records in batch.items() if records)
    return span(
        "projector batch",
        kind=SpanKind.CONSUMER,
        links=_links(batch),
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.batch.message_count": sum(len(records) for records in batch.values()),
            "mmbus.projector": projector,
            "mmbus.partitions": partitions,
            "mmbus.topics": sorted({tp.topic for tp in batch}),
        },
    )


def _links(batch: Batch) -> list[trace.Link]:
    links: dict[int, trace.Link] = {}
    scanned = 0
    for records in batch.values():
        for record in records[: MAX_SCANNED - scanned]:
            link = link_to(record.headers)
            if link is not None and link.context.trace_id not in links:
                links[link.context.trace_id] = link
                if len(links) >= MAX_LINKS:
                    return list(links.values())
        scanned += min(len(records), MAX_SCANNED - scanned)
        if scanned >= MAX_SCANNED:
            break
    return list(links.values())
