"""What every part of the normalizer shares: the envelope of a derived event, its id,
its time, and the two ways a part that does not fit is kept (``webhook.unrecognized``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from mmbus.contracts.envelope import Message, derive_id
from mmbus.contracts.webhook_events import WebhookReceived, WebhookUnrecognized, meta_time

SOURCE = "mmbus/ingest"
Json = dict[str, Any]
# (raw, entry id, entry, change value) -> the events of one change.
Handler = Callable[[WebhookReceived, str | None, Json, Json], Iterator[Message]]


def items(value: Json, key: str) -> list[Json]:
    """The objects of the list ``value[key]``; anything else there is ignored."""
    found = value.get(key)
    return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []


def text(value: Any) -> str | None:
    """A Graph id or user id as text: Meta sends some as numbers."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def metadata(value: Json) -> Json:
    found = value.get("metadata")
    return found if isinstance(found, dict) else {}


def event_time(raw: WebhookReceived, timestamp: Any) -> datetime | Any:
    """The event's own time when it has one (strings or integers of epoch seconds)."""
    digits = str(timestamp).strip() if timestamp is not None else ""
    if digits.isdigit():
        return int(digits)
    return raw.data.received_at


def envelope(
    raw: WebhookReceived,
    message_type: str,
    identity: Json,
    subject: str,
    timestamp: Any,
    data: Json,
    *,
    version: int = 1,
) -> Json:
    return {
        "id": derive_id(message_type, identity),
        "type": message_type,
        "version": version,
        "time": meta_time(event_time(raw, timestamp)),
        "source": SOURCE,
        "subject": subject,
        "causation_id": raw.id,
        "data": data,
    }


def guard(
    raw: WebhookReceived, waba_id: str | None, field: str, part: Any, build: Callable[[], Message]
) -> Message:
    """The event ``build`` makes, or the part kept as ``webhook.unrecognized`` with why."""
    try:
        return build()
    except (ValidationError, ValueError, TypeError, OverflowError) as exc:
        reason = (
            exc.errors(include_url=False)[0]["msg"]
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        return unrecognized(
            raw, waba_id, "whatsapp_business_account", field, f"does not fit: {reason}", part
        )


def unrecognized(
    raw: WebhookReceived, waba_id: str | None, obj: Any, field: Any, reason: str, value: Any
) -> Message:
    identity = {"waba_id": waba_id, "field": str(field), "value": canonical(value)}
    return WebhookUnrecognized.model_validate(
        {
            "id": derive_id("webhook.unrecognized", identity),
            "time": raw.data.received_at,
            "source": SOURCE,
            "subject": waba_id or raw.subject,
            "causation_id": raw.id,
            "data": {
                "waba_id": waba_id,
                "object": obj if isinstance(obj, str) else None,
                "field": field if isinstance(field, str) else None,
                "reason": reason,
                "value": value,
            },
        }
    )


def canonical(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, default=repr)
