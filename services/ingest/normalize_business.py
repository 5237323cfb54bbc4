"""Account updates, users' marketing preferences and template updates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from mmbus.contracts.envelope import Message
from mmbus.contracts.webhook_events import (
    AccountUpdated,
    TemplateCategoryChanged,
    TemplateComponentsChanged,
    TemplateQualityChanged,
    TemplateStatusChanged,
    UserMarketingPreferenceChanged,
    WebhookReceived,
)
from services.ingest.identities import identify
from services.ingest.normalize_base import Handler, Json, envelope, guard, items, metadata, text


def account(
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
    yield guard(
        raw,
        entry_id,
        "account_update",
        value,
        lambda: AccountUpdated.model_validate(
            envelope(raw, "account.updated", identity, waba_id, timestamp, data)
        ),
    )


def preferences(
    raw: WebhookReceived, waba_id: str | None, entry: Json, value: Json
) -> Iterator[Message]:
    number = text(metadata(value).get("phone_number_id"))
    contacts = items(value, "contacts")
    found = items(value, "user_preferences")
    for index, item in enumerate(found):
        who = identify(item, "preference", contacts, index, len(found))
        data = {
            **item,
            # Keyed by wa_id when there is one: the sender suppresses by phone number.
            "user_id": who.wa_id or who.user_id,
            "user_bsuid": who.user_id,
            "parent_user_id": who.parent_user_id,
            "preference": item.get("value"),
            "waba_id": waba_id,
            "phone_number_id": number,
        }
        data.pop("value", None)
        identity = {
            k: str(item.get(k)) for k in ("wa_id", "user_id", "value", "category", "timestamp")
        }
        identity["waba_id"] = str(waba_id)
        yield guard(
            raw, waba_id, "user_preferences", item, partial(_preference, raw, identity, data)
        )


def _preference(raw: WebhookReceived, identity: Json, data: Json) -> Message:
    return UserMarketingPreferenceChanged.model_validate(
        envelope(
            raw,
            "user.marketing_preference_changed",
            identity,
            str(data["user_id"]),
            data.get("timestamp"),
            data,
        )
    )


# ----------------------------------------------------------------- templates
# Meta's message_template_* keys that become named fields; every other one is kept as
# sent (message_template_category of a component update, _title, _buttons, ...).
_NAMED = {
    "message_template_id": "template_id",
    "message_template_name": "name",
    "message_template_language": "language",
}


def _template_base(waba_id: str | None, entry: Json, value: Json, named: dict[str, str]) -> Json:
    template_id = value.get("message_template_id")
    return {
        **{k: v for k, v in value.items() if k not in named},
        "waba_id": waba_id,
        "template_id": str(template_id) if template_id is not None else None,
        "name": value.get("message_template_name"),
        "language": value.get("message_template_language"),
        "timestamp": entry.get("time"),
    }


def _template_event(
    kind: type[Message],
    message_type: str,
    extra: Callable[[Json], Json],
    named: dict[str, str] | None = None,
) -> Handler:
    names = {**_NAMED, **(named or {})}

    def handler(
        raw: WebhookReceived, waba_id: str | None, entry: Json, value: Json
    ) -> Iterator[Message]:
        data = {**_template_base(waba_id, entry, value, names), **extra(value)}
        identity = {"waba_id": waba_id, "value": value, "time": str(entry.get("time"))}
        subject = f"{waba_id}:{data.get('name') or data.get('template_id')}"
        yield guard(
            raw,
            waba_id,
            message_type,
            value,
            lambda: kind.model_validate(
                envelope(raw, message_type, identity, subject, entry.get("time"), data)
            ),
        )

    return handler


TEMPLATE_HANDLERS: dict[str, Handler] = {
    "message_template_status_update": _template_event(
        TemplateStatusChanged,
        "template.status_changed",
        lambda v: {
            "event": v.get("event"),
            "reason": v.get("reason"),
            "category": v.get("message_template_category"),
        },
        {"message_template_category": "category"},
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
    "message_template_components_update": _template_event(
        TemplateComponentsChanged, "template.components_changed", lambda v: {}
    ),
}
