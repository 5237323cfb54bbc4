"""Raw webhooks to typed events: ``normalize(raw) -> list[Event]``, a pure function.

Every event's id is derived from what identifies it in the webhook (a wamid and
status and timestamp; a click id; a WABA and event), never from when it was
seen, so a duplicate webhook or a replay of the raw stream yields the same ids.
Nothing raises: a part that does not fit the known shapes becomes a
``webhook.unrecognized`` event carrying it exactly as sent, with the reason.
Unknown fields inside known shapes are kept.

Typed, by webhook field: ``messages`` (statuses, user actions, inbound messages),
``smb_message_echoes``, ``account_update``, ``user_preferences``,
``message_template_status_update``, ``template_category_update``,
``message_template_quality_update``, ``message_template_components_update``; and
``value.errors[]`` of any change (``webhook.errors_reported``). Kinds mmbus knows but
does not type (:data:`UNTYPED`) are kept as ``webhook.unrecognized`` with a reason
naming the kind.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from mmbus.contracts.codec import loads
from mmbus.contracts.envelope import Message, derive_id
from mmbus.contracts.webhook_events import WebhookErrorsReported, WebhookReceived, meta_time
from services.ingest.normalize_base import (
    SOURCE,
    Handler,
    Json,
    canonical,
    event_time,
    guard,
    items,
    metadata,
    text,
    unrecognized,
)
from services.ingest.normalize_business import TEMPLATE_HANDLERS, account, preferences
from services.ingest.normalize_messages import echoes, messages

HANDLERS: dict[str, Handler] = {
    "messages": messages,
    "smb_message_echoes": echoes,
    "account_update": account,
    "user_preferences": preferences,
    **TEMPLATE_HANDLERS,
}

# Webhook fields mmbus knows and deliberately does not type: nothing in mmbus consumes
# them, and the raw stream and webhooks.unrecognized keep them exactly as sent.
UNTYPED: dict[str, str] = {
    "calls": "WhatsApp Calling API call events (connect, terminate, call statuses)",
    "smb_app_state_sync": "contacts synced from the WhatsApp Business app (coexistence)",
    "history": "chat history shared from the WhatsApp Business app (coexistence)",
    "user_id_update": "a user's business-scoped user id changed",
    "business_capability_update": "the WABA's messaging limits changed",
    "phone_number_quality_update": "a business number's quality rating or messaging tier",
}


def normalize(raw: WebhookReceived) -> list[Message]:
    """All events one raw webhook carries, in the order they appear in it."""
    body = _parse(raw)
    if not isinstance(body, dict):
        return [unrecognized(raw, None, None, None, "the body is not a JSON object", body)]
    entries = body.get("entry")
    if not isinstance(entries, list):
        return [unrecognized(raw, None, body.get("object"), None, "no entry list", body)]
    events: list[Message] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            events.append(
                unrecognized(raw, None, body.get("object"), None, "entry without changes", entry)
            )
            continue
        entry_id = str(entry.get("id")) if entry.get("id") is not None else None
        for change in entry["changes"]:
            events.extend(_change(raw, body.get("object"), entry_id, entry, change))
    return events


def _parse(raw: WebhookReceived) -> Any:
    data = raw.data
    try:
        payload = (
            base64.b64decode(data.body) if data.body_encoding == "base64" else data.body.encode()
        )
        # The codec's parser: integers beyond 64 bits stay exact (orjson makes them floats).
        return loads(payload)
    except (ValueError, RecursionError):
        return None


def _change(
    raw: WebhookReceived, obj: Any, entry_id: str | None, entry: Json, change: Any
) -> list[Message]:
    if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
        return [unrecognized(raw, entry_id, obj, None, "change without a value object", change)]
    field = change.get("field")
    value: Json = change["value"]
    handler = HANDLERS.get(field) if isinstance(field, str) else None
    if handler is None:
        out = [unrecognized(raw, entry_id, obj, field, _why_untyped(field), value)]
    else:
        out = list(handler(raw, entry_id, entry, value))
    errors = list(_errors(raw, entry_id, entry, field, value))
    if not out and not errors:
        reason = f"nothing known inside this {field} change"
        out.append(unrecognized(raw, entry_id, obj, field, reason, value))
    return out + errors


def _why_untyped(field: Any) -> str:
    if isinstance(field, str) and field in UNTYPED:
        return f"{field}: {UNTYPED[field]}; not typed by mmbus, kept as sent"
    return f"no normalizer for field {field!r}"


def _errors(
    raw: WebhookReceived, waba_id: str | None, entry: Json, field: Any, value: Json
) -> Iterator[Message]:
    """``value.errors[]``: errors Meta reports for the whole change, not for one item."""
    errors = items(value, "errors")
    if not errors:
        return
    beside = ("messages", "statuses", "message_echoes", "user_actions", "calls")
    data = {
        "raw_id": raw.id,
        "waba_id": waba_id,
        "phone_number_id": text(metadata(value).get("phone_number_id")),
        "field": field if isinstance(field, str) else None,
        "errors": errors,
        "beside": sorted(k for k in value if k not in {"errors", "metadata", "messaging_product"}),
        "ids_beside": [
            found for key in beside for item in items(value, key) if (found := text(item.get("id")))
        ],
    }
    identity = {
        "raw_id": raw.id,
        "waba_id": waba_id,
        "field": str(field),
        "value": canonical(value),
    }
    yield guard(
        raw,
        waba_id,
        str(field),
        errors,
        lambda: WebhookErrorsReported.model_validate(
            {
                "id": derive_id("webhook.errors_reported", identity),
                "time": meta_time(event_time(raw, entry.get("time"))),
                "source": SOURCE,
                "subject": waba_id or raw.subject,
                "causation_id": raw.id,
                "data": data,
            }
        ),
    )
