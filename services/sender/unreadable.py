"""A record on the command stream that is no command: dead-lettered and rejected, once.

The rejection's id follows the record's coordinates and the ledger remembers
it, so reading the same record again (another consumer group, a restart)
writes nothing new. Builders are pure; :func:`reject_unreadable` writes
through the handler's ports.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from mmbus.contracts.codec import DecodeFailure
from mmbus.contracts.envelope import derive_id
from mmbus.contracts.send_events import SendRejected
from mmbus.contracts.webhook_events import DeadLetterRecorded
from mmbus.dead_letters import dead_letter
from services.common.logging import get_logger
from services.sender.ledger import Ledger
from services.sender.metrics import SenderMetrics
from services.sender.ports import Clock, CommandRecord, Results
from services.sender.results import SOURCE

log = get_logger("mmbus.sender")


async def reject_unreadable(
    record: CommandRecord,
    failure: DecodeFailure,
    *,
    ledger: Ledger,
    out: Results,
    clock: Clock,
    metrics: SenderMetrics,
    consumer: str,
    dead_letter_topic: str,
) -> None:
    """Dead-letter the record and reject it, once: a second reading finds the rejection."""
    if ledger.rejected(rejection_id(record.topic, record.partition, record.offset)):
        metrics.duplicates.inc()
        return
    command_id, number = salvage(record.value)
    now = clock.now()
    dead = dead_letter(
        record, failure, consumer=consumer, source=SOURCE, time=now, correlation_id=command_id
    )
    await out.dead_letter(dead)
    metrics.count(None, "dead_lettered", failure.reason)
    log.warning(
        "invalid command dead-lettered",
        reason=failure.reason,
        detail=failure.detail,
        offset=record.offset,
    )
    event = unreadable_rejected(dead, failure, command_id, number, dead_letter_topic, now)
    await out.about(event, record)


def rejection_id(topic: str, partition: int, offset: int) -> str:
    """The id of the rejection of the record at these coordinates: the same every time."""
    return derive_id("send.rejected", {"topic": topic, "partition": partition, "offset": offset})


def unreadable_rejected(
    dead: DeadLetterRecorded,
    failure: DecodeFailure,
    command_id: str | None,
    number: str | None,
    dead_letter_topic: str,
    now: datetime,
) -> SendRejected:
    """The rejection of a record that is no command; its id follows the record's coordinates,
    so reading the same record again (another group, a restart) rejects it once."""
    return SendRejected.model_validate(
        {
            "id": rejection_id(dead.data.source_topic, dead.data.partition, dead.data.offset),
            "time": now,
            "source": SOURCE,
            "subject": command_id or dead.subject,
            "correlation_id": command_id,
            "causation_id": dead.id,
            "data": {
                "command_id": command_id,
                "phone_number_id": number,
                "reason": failure.reason,
                "errors": failure.errors or (failure.detail,),
                "dead_letter_topic": dead_letter_topic,
            },
        }
    )


def salvage(value: bytes | None) -> tuple[str | None, str | None]:
    """Best effort: the command id and number of an unreadable command, for the rejection."""
    try:
        raw = orjson.loads(value or b"")
        data = raw.get("data", {}) if isinstance(raw, dict) else {}
        cid, number = data.get("command_id"), data.get("phone_number_id")
        return (cid if isinstance(cid, str) else None, number if isinstance(number, str) else None)
    except (orjson.JSONDecodeError, AttributeError):
        return None, None
