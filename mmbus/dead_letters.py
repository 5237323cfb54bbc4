"""The dead-letter record for a Kafka record a consumer could not use: one builder for everyone.

The sender, the ingest normalizer and every FastStream consumer built with
:mod:`mmbus.consumer` give up on a record the same way, so an operator reads
one shape on the dead-letter stream whoever wrote it. The id is derived from
the record's coordinates: a consumer that dies after writing the dead letter
and reads the record again writes the same id, which consumers de-duplicate.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from mmbus.contracts.codec import DecodeFailure
from mmbus.contracts.envelope import derive_id
from mmbus.contracts.webhook_events import DeadLetterRecorded, DeadLetterRecordedData


class RecordLike(Protocol):
    """What a dead letter needs of a consumed record (aiokafka's ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def _b64(raw: bytes | None) -> str | None:
    return base64.b64encode(raw).decode() if raw is not None else None


def record_time(record: RecordLike) -> datetime:
    """The record's own timestamp: a replayed dead letter gets the same time."""
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


def dead_letter(
    record: RecordLike,
    failure: DecodeFailure,
    *,
    consumer: str,
    source: str,
    time: datetime | None = None,
    correlation_id: str | None = None,
) -> DeadLetterRecorded:
    """A ``dead_letter.recorded`` event carrying the record's bytes and why it was refused."""
    where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    return DeadLetterRecorded(
        id=derive_id("dead_letter.recorded", where),
        time=time or record_time(record),
        source=source,
        subject=f"{record.topic}:{record.partition}:{record.offset}",
        correlation_id=correlation_id,
        data=DeadLetterRecordedData(
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key_b64=_b64(record.key),
            value_b64=_b64(record.value),
            headers=tuple((name, base64.b64encode(v).decode()) for name, v in record.headers or ()),
            reason=failure.reason,
            detail=failure.detail,
            errors=failure.errors,
            consumer=consumer,
        ),
    )
