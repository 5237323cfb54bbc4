"""Raw webhooks to typed events: ``normalize(raw) -> list[Event]``, a pure function.

Every event's id is derived from what identifies it in the webhook (a wamid and
status and timestamp; a click id; a WABA and event), never from when it was
seen, so a duplicate webhook or a replay of the raw stream yields the same ids.
Nothing raises: a part that does not fit the known shapes becomes a
``webhook.unrecognized`` event carrying it exactly as sent, with the reason.
Unknown fields inside known shapes are kept.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from pydantic import ValidationError

from mmbus.contracts.callback import command_id_from_callback
from mmbus.contracts.envelope import Message, derive_id
from mmbus.contracts.webhook_events import (
    AccountUpdated,
    MarketingLinkClicked,
    MessageReceived,
    MessageStatus,
    TemplateCategoryChanged,
    TemplateQualityChanged,
    TemplateStatusChanged,
    UserMarketingPreferenceChanged,
    WebhookReceived,
    WebhookUnrecognized,
    meta_time,
)

SOURCE = "mmbus/ingest"
Json = dict[str, Any]


def normalize(raw: WebhookReceived) -> list[Message]:
    """All events one raw webhook carries, in the order they appear in it."""
    body = _parse(raw)
    if not isinstance(body, dict):
        return [_unrecognized(raw, None, None, None, "the body is not a JSON object", body)]
    entries = body.get("entry")
    if not isinstance(entries, list):
        return [_unrecognized(raw, None, body.get("object"), None, "no entry list", body)]
    events: list[Message] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            events.append(
                _unrecognized(raw, None, body.get("object"), None, "entry without changes", entry)
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
        return orjson.loads(payload)
    except (ValueError, orjson.JSONDecodeError):
        return None


def _change(
    raw: WebhookReceived, obj: Any, entry_id: str | None, entry: Json, change: Any
) -> list[Message]:
    if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
        return [_unrecognized(raw, entry_id, obj, None, "change without a value object", change)]
    field = change.get("field")
    handler = _HANDLERS.get(field) if isinstance(field, str) else None
    if handler is None:
        return [
            _unrecognized(
                raw, entry_id, obj, field, f"no normalizer for field {field!r}", change["value"]
            )
        ]
    value: Json = change["value"]
    out: list[Message] = []
    recognized = False
    for event in handler(raw, entry_id, entry, value):
        recognized = True
        out.append(event)
    if not recognized:
        out.append(
            _unrecognized(
                raw, entry_id, obj, field, f"nothing known inside this {field} change", value
            )
        )
    return out


# ------------------------------------------------------------------ messages
def _messages(
    raw: WebhookReceived, waba_id: str | None, entry: Json, value: Json
) -> Iterator[Message]:
    metadata: Json = value["metadata"] if isinstance(value.get("metadata"), dict) else {}
    number = str(metadata.get("phone_number_id", "")) or None
    display = metadata.get("display_phone_number")
    for status in _items(value, "statuses"):
        yield _guard(
            raw,
            waba_id,
            "messages",
            status,
            partial(_status, raw, waba_id, number, display, status),
        )
    for action in _items(value, "user_actions"):
        yield _guard(
            raw, waba_id, "messages", action, partial(_click, raw, waba_id, number, action)
        )
    contacts = {str(c.get("wa_id")): c for c in _items(value, "contacts")}
    for message in _items(value, "messages"):
        yield _guard(
            raw,
            waba_id,
            "messages",
            message,
            partial(
                _inbound, raw, waba_id, number, message, contacts.get(str(message.get("from")))
            ),
        )


def _status(
    raw: WebhookReceived, waba_id: str | None, number: str | None, display: Any, item: Json
) -> Message:
    data = {
        **item,
        "wamid": item.get("id"),
        "waba_id": waba_id,
        "phone_number_id": number,
        "display_phone_number": display,
        "recipient_user_id": item.get("recipient_user_id") or item.get("user_id"),
    }
    data.pop("id", None)
    identity = {
        "wamid": item.get("id"),
        "status": item.get("status"),
        "timestamp": str(item.get("timestamp")),
    }
    callback = item.get("biz_opaque_callback_data")
    return MessageStatus.model_validate(
        _envelope(raw, "message.status", identity, str(item.get("id")), item.get("timestamp"), data)
        | {
            "correlation_id": command_id_from_callback(
                callback if isinstance(callback, str) else None
            )
        }
    )


def _click(raw: WebhookReceived, waba_id: str | None, number: str | None, action: Json) -> Message:
    action_type = action.get("action_type")
    found = action.get(f"{action_type}_data") if isinstance(action_type, str) else None
    details: Json = found if isinstance(found, dict) else {}
    data = {
        **{
            k: v
            for k, v in action.items()
            if not (isinstance(action_type, str) and k == f"{action_type}_data")
        },
        "waba_id": waba_id,
        "phone_number_id": number,
        "tracking_token": details.get("tracking_token"),
        "click_id": details.get("click_id"),
        "click_component": details.get("click_component"),
        "action_data": details,
    }
    identity = {
        "phone_number_id": number,
        "action_type": action_type,
        "click_id": details.get("click_id"),
        "tracking_token": details.get("tracking_token"),
        "timestamp": str(action.get("timestamp")),
    }
    return MarketingLinkClicked.model_validate(
        _envelope(
            raw, "marketing.link_clicked", identity, number or "", action.get("timestamp"), data
        )
    )


def _inbound(
    raw: WebhookReceived,
    waba_id: str | None,
    number: str | None,
    message: Json,
    contact: Json | None,
) -> Message:
    data = {
        "wamid": message.get("id"),
        "waba_id": waba_id,
        "phone_number_id": number,
        "from": message.get("from"),
        "timestamp": message.get("timestamp"),
        "message_type": message.get("type"),
        "message": message,
        "contact": contact,
    }
    identity = {"wamid": message.get("id")}
    return MessageReceived.model_validate(
        _envelope(
            raw,
            "message.received",
            identity,
            str(message.get("id")),
            message.get("timestamp"),
            data,
        )
    )


# ------------------------------------------------------------------- account
def _account(
    raw: WebhookReceived, entry_id: str | None, entry: Json, value: Json
) -> Iterator[Message]:
    info: Json = value["waba_info"] if isinstance(value.get("waba_info"), dict) else {}
    waba_id = str(info.get("waba_id") or entry_id or "")
    event = value.get("event")
    timestamp = entry.get("time")
    data = {
        "waba_id": waba_id,
        "event": event,
        "timestamp": timestamp,
        "owner_business_id": info.get("owner_business_id"),
        "waba_info": info or None,
        "value": value,
    }
    identity = {"waba_id": waba_id, "event": event, "value": value, "time": str(timestamp)}
    yield _guard(
        raw,
        entry_id,
        "account_update",
        value,
        lambda: AccountUpdated.model_validate(
            _envelope(raw, "account.updated", identity, waba_id, timestamp, data)
        ),
    )


def _preferences(
    raw: WebhookReceived, waba_id: str | None, entry: Json, value: Json
) -> Iterator[Message]:
    metadata: Json = value["metadata"] if isinstance(value.get("metadata"), dict) else {}
    for item in _items(value, "user_preferences"):
        data = {
            **item,
            "user_id": item.get("wa_id") or item.get("user_id"),
            "preference": item.get("value"),
            "waba_id": waba_id,
            "phone_number_id": metadata.get("phone_number_id"),
        }
        data.pop("value", None)
        identity = {
            k: str(item.get(k)) for k in ("wa_id", "user_id", "value", "category", "timestamp")
        }
        identity["waba_id"] = str(waba_id)
        yield _guard(
            raw,
            waba_id,
            "user_preferences",
            item,
            partial(_preference, raw, identity, data),
        )


def _preference(raw: WebhookReceived, identity: Json, data: Json) -> Message:
    return UserMarketingPreferenceChanged.model_validate(
        _envelope(
            raw,
            "user.marketing_preference_changed",
            identity,
            str(data["user_id"]),
            data.get("timestamp"),
            data,
        )
    )


# ----------------------------------------------------------------- templates
def _template_base(waba_id: str | None, entry: Json, value: Json) -> Json:
    template_id = value.get("message_template_id")
    return {
        **{k: v for k, v in value.items() if not k.startswith("message_template_")},
        "waba_id": waba_id,
        "template_id": str(template_id) if template_id is not None else None,
        "name": value.get("message_template_name"),
        "language": value.get("message_template_language"),
        "timestamp": entry.get("time"),
    }


def _template_event(
    kind: type[Message], message_type: str, extra: Callable[[Json], Json]
) -> Callable[[WebhookReceived, str | None, Json, Json], Iterator[Message]]:
    def handler(
        raw: WebhookReceived, waba_id: str | None, entry: Json, value: Json
    ) -> Iterator[Message]:
        data = {**_template_base(waba_id, entry, value), **extra(value)}
        identity = {"waba_id": waba_id, "value": value, "time": str(entry.get("time"))}
        subject = f"{waba_id}:{data.get('name') or data.get('template_id')}"
        yield _guard(
            raw,
            waba_id,
            message_type,
            value,
            lambda: kind.model_validate(
                _envelope(raw, message_type, identity, subject, entry.get("time"), data)
            ),
        )

    return handler


_HANDLERS: dict[str, Callable[[WebhookReceived, str | None, Json, Json], Iterator[Message]]] = {
    "messages": _messages,
    "account_update": _account,
    "user_preferences": _preferences,
    "message_template_status_update": _template_event(
        TemplateStatusChanged,
        "template.status_changed",
        lambda v: {"event": v.get("event"), "reason": v.get("reason")},
    ),
    "template_category_update": _template_event(
        TemplateCategoryChanged,
        "template.category_changed",
        lambda v: {
            "previous_category": v.get("previous_category"),
            "new_category": v.get("new_category"),
        },
    ),
    "message_template_quality_update": _template_event(
        TemplateQualityChanged,
        "template.quality_changed",
        lambda v: {
            "previous_quality_score": v.get("previous_quality_score"),
            "new_quality_score": v.get("new_quality_score"),
        },
    ),
}


# ------------------------------------------------------------------- helpers
def _items(value: Json, key: str) -> list[Json]:
    items = value.get(key)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _event_time(raw: WebhookReceived, timestamp: Any) -> datetime | Any:
    """The event's own time when it has one (strings or integers of epoch seconds)."""
    text = str(timestamp).strip() if timestamp is not None else ""
    if text.isdigit():
        return int(text)
    return raw.data.received_at


def _envelope(
    raw: WebhookReceived,
    message_type: str,
    identity: Json,
    subject: str,
    timestamp: Any,
    data: Json,
) -> Json:
    return {
        "id": derive_id(message_type, identity),
        "type": message_type,
        "version": 1,
        "time": meta_time(_event_time(raw, timestamp)),
        "source": SOURCE,
        "subject": subject,
        "causation_id": raw.id,
        "data": data,
    }


def _guard(
    raw: WebhookReceived, waba_id: str | None, field: str, part: Any, build: Callable[[], Message]
) -> Message:
    try:
        return build()
    except (ValidationError, ValueError, TypeError, OverflowError) as exc:
        reason = (
            exc.errors(include_url=False)[0]["msg"]
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        return _unrecognized(
            raw, waba_id, "whatsapp_business_account", field, f"does not fit: {reason}", part
        )


def _unrecognized(
    raw: WebhookReceived, waba_id: str | None, obj: Any, field: Any, reason: str, value: Any
) -> Message:
    identity = {"waba_id": waba_id, "field": str(field), "value": _canonical(value)}
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


def _canonical(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, default=repr)
