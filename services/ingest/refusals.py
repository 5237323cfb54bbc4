"""Webhooks Kafka will never take, and the dead letters that keep what can be kept.

A raw record the broker (or the producer, before sending) refuses for a reason that a
retry cannot change, such as its size, is answered with a 4xx that says why, never
503: 503 means "Kafka is unavailable right now, try again". Meta retries every
answer but 200, so the 4xx is for people and metrics, and the dead letter is what
keeps the webhook.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from aiokafka.errors import (
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedForMessageFormatError,
)

from mmbus.contracts.envelope import derive_id
from mmbus.contracts.webhook_events import DeadLetterRecorded, WebhookReceived
from services.ingest.verification import SOURCE


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    detail: str


# Errors about the record itself: the same record is refused again however often it
# is sent. Anything else (timeouts, leaders moving, authorisation) is Kafka's state.
PERMANENT: tuple[tuple[type[KafkaError], int, str], ...] = (
    (MessageSizeTooLargeError, 413, "record_too_large"),
    (RecordListTooLargeError, 413, "record_too_large"),
    (InvalidTimestampError, 422, "record_invalid"),
    (UnsupportedForMessageFormatError, 422, "record_invalid"),
)


def refusal_of(exc: BaseException, topic: str, record_bytes: int) -> Refusal | None:
    """The permanent refusal ``exc`` is, or None when a retry may succeed."""
    for kind, status, reason in PERMANENT:
        if isinstance(exc, kind):
            return Refusal(
                status,
                reason,
                f"Kafka refuses the raw record ({record_bytes} bytes) on {topic}: "
                f"{type(exc).__name__}; check the topic's max.message.bytes against "
                "MMBUS_INGEST_MAX_BODY_BYTES",
            )
    return None


def keep_sizes(body_bytes: int, dead_letter_limit: int) -> list[int]:
    """How much of the body each dead-letter attempt keeps, largest first, down to none.

    The body is kept whole when its base64 fits the dead-letter topic with room for the
    envelope; smaller prefixes follow in case the topic holds less than it should.
    """
    fits = max(0, (dead_letter_limit - 16 * 1024) * 3 // 4)
    sizes = [min(body_bytes, fits), min(body_bytes, 64 * 1024), 0]
    return sorted(set(sizes), reverse=True)


def dead_letter(
    record: WebhookReceived,
    body: bytes,
    *,
    reason: str,
    detail: str,
    keep: int | None = None,
    errors: tuple[str, ...] = (),
) -> DeadLetterRecorded:
    """A dead letter for a webhook body that never became a raw record.

    Its id follows the raw record's (a hash of the body), so Meta's retries of the same
    webhook write the same dead letter. ``keep``: how many leading bytes of the body
    it carries (all when None); what was cut is said in ``errors``.
    """
    kept = body if keep is None else body[:keep]
    facts = errors
    if len(kept) < len(body):
        facts = (
            *errors,
            f"body_bytes={len(body)}",
            f"kept_bytes={len(kept)}",
            f"body_sha256={hashlib.sha256(body).hexdigest()}",
        )
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
                "value_b64": base64.b64encode(kept).decode(),
                "reason": reason,
                "detail": detail,
                "errors": facts,
                "consumer": "mmbus-ingest",
            },
        }
    )
