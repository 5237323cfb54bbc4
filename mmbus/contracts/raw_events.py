"""Ingest's own records: the raw webhook, what could not be typed, webhook-level errors,
and dead letters."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from pydantic import Field

from mmbus.contracts.envelope import Frozen, Message
from mmbus.contracts.fields import JSON_INTEGER, Instant, JsonInt
from mmbus.contracts.meta_shapes import WebhookError


# ------------------------------------------------------------------ raw record
class WebhookReceivedData(Frozen):
    """A webhook body exactly as received, with what ingest knew when it took it."""

    received_at: Instant
    source: Literal["meta", "360dialog"] = "meta"
    path: str
    body: str = Field(description="The body: UTF-8 text, or base64 when it was not UTF-8.")
    body_encoding: Literal["utf-8", "base64"] = "utf-8"
    signature: Literal["valid", "invalid", "missing", "not_required"]
    signature_key_index: Annotated[int, Field(ge=0), JSON_INTEGER] | None = Field(
        default=None, description="Which configured app secret verified it (rotation)."
    )
    content_type: str | None = None
    waba_id: str | None = Field(default=None, description="entry[0].id when the body had one.")


class WebhookReceived(Message):
    type: Literal["webhook.received"] = "webhook.received"
    version: Literal[1] = 1
    data: WebhookReceivedData
    topic_stream = "webhooks.raw"

    def record_key(self) -> bytes:
        return (self.data.waba_id or "unknown").encode()


# ------------------------------------------------------------- unrecognized
class WebhookUnrecognizedData(Frozen):
    waba_id: str | None = None
    object: str | None = None
    field: str | None = None
    reason: str
    value: Any = Field(description="The unrecognised part, exactly as sent.")


class WebhookUnrecognized(Message):
    """Meta sent something we do not know yet; kept, never rejected."""

    type: Literal["webhook.unrecognized"] = "webhook.unrecognized"
    version: Literal[1] = 1
    data: WebhookUnrecognizedData
    topic_stream = "webhooks.unrecognized"

    def record_key(self) -> bytes:
        return (self.data.waba_id or "unknown").encode()


# --------------------------------------------------------- webhook-level errors
class WebhookErrorsReportedData(Frozen):
    raw_id: str = Field(description="The webhook.received record whose body carried the errors.")
    waba_id: str | None = None
    phone_number_id: str | None = None
    field: str | None = Field(default=None, description="The change's field, e.g. messages.")
    errors: tuple[WebhookError, ...] = Field(
        min_length=1, description="value.errors[] exactly as Meta sent them."
    )
    beside: tuple[str, ...] = Field(
        default=(), description="What else the change's value carried (messages, statuses, ...)."
    )
    ids_beside: tuple[str, ...] = Field(
        default=(), description="Ids of the messages and statuses beside the errors."
    )


class WebhookErrorsReported(Message):
    """Meta reported errors for a whole webhook change (``value.errors[]``), not for one
    message; e.g. 131000 "Unsupported webhook payload" beside an inbound message."""

    type: Literal["webhook.errors_reported"] = "webhook.errors_reported"
    version: Literal[1] = 1
    data: WebhookErrorsReportedData
    topic_stream = "webhooks.errors"

    def record_key(self) -> bytes:
        return (self.data.waba_id or "unknown").encode()


# ------------------------------------------------------------- dead letters
class DeadLetterRecordedData(Frozen):
    source_topic: str
    # -1: the bytes never were a Kafka record (ingest's unreadable webhook bodies).
    partition: JsonInt = Field(ge=-1)
    offset: JsonInt = Field(ge=-1)
    key_b64: str | None = None
    value_b64: str | None
    headers: tuple[tuple[str, str], ...] = Field(
        default=(), description="Original headers; values base64."
    )
    reason: str = Field(description="Machine-readable reason, e.g. invalid_json, unknown_type.")
    detail: str = Field(description="What was wrong, for a person.")
    errors: tuple[str, ...] = ()
    consumer: str = Field(description="Which consumer gave up on it.")


class DeadLetterRecorded(Message):
    type: Literal["dead_letter.recorded"] = "dead_letter.recorded"
    version: Literal[1] = 1
    data: DeadLetterRecordedData
    topic_stream = "dead-letters"

    def record_key(self) -> bytes:
        if self.data.key_b64:
            return base64.b64decode(self.data.key_b64)
        return f"{self.data.source_topic}:{self.data.partition}:{self.data.offset}".encode()
