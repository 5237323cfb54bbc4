"""The ``messages`` field (statuses, user actions, inbound messages) and message echoes.

Ids come from what identifies each event in the webhook: a status by its wamid, status
and timestamp; a click by its number, click id, token and time; a message by its wamid.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

from mmbus.contracts.callback import command_id_from_callback
from mmbus.contracts.envelope import Message
from mmbus.contracts.webhook_events import (
    MarketingLinkClicked,
    MarketingUserActionRecorded,
    MessageEchoed,
    MessageReceived,
    MessageStatus,
    WebhookReceived,
)
from services.ingest.identities import Identity, identify
from services.ingest.normalize_base import Json, canonical, envelope, guard, items, metadata, text

LINK_CLICK = "marketing_messages_link_click"


def messages(
    raw: WebhookReceived, waba_id: str | None, entry: Json, value: Json
) -> Iterator[Message]:
    meta = metadata(value)
    number, display = text(meta.get("phone_number_id")), text(meta.get("display_phone_number"))
    contacts = items(value, "contacts")
    statuses = items(value, "statuses")
    for index, item in enumerate(statuses):
        who = identify(item, "status", contacts, index, len(statuses))
        build = partial(_status, raw, waba_id, number, display, item, who)
        yield guard(raw, waba_id, "messages", item, build)
    for action in items(value, "user_actions"):
        action_kind = _click if action.get("action_type") == LINK_CLICK else _user_action
        yield guard(
            raw, waba_id, "messages", action, partial(action_kind, raw, waba_id, number, action)
        )
    inbound = items(value, "messages")
    for index, message in enumerate(inbound):
        who = identify(message, "message", contacts, index, len(inbound))
        build = partial(_inbound, raw, waba_id, number, message, who)
        yield guard(raw, waba_id, "messages", message, build)


def _status(
    raw: WebhookReceived,
    waba_id: str | None,
    number: str | None,
    display: str | None,
    item: Json,
    who: Identity,
) -> Message:
    data = {
        **item,
        "wamid": item.get("id"),
        "waba_id": waba_id,
        "phone_number_id": number,
        "display_phone_number": display,
        "recipient_id": who.wa_id,
        "recipient_user_id": who.user_id,
        "recipient_parent_user_id": who.parent_user_id,
    }
    data.pop("id", None)
    identity = {
        "wamid": item.get("id"),
        "status": item.get("status"),
        "timestamp": str(item.get("timestamp")),
    }
    callback = item.get("biz_opaque_callback_data")
    return MessageStatus.model_validate(
        envelope(raw, "message.status", identity, str(item.get("id")), item.get("timestamp"), data)
        | {
            "correlation_id": command_id_from_callback(
                callback if isinstance(callback, str) else None
            )
        }
    )


def _action_parts(action: Json) -> tuple[Any, Json, Json]:
    """The action's type, its ``<action_type>_data`` object, and every other key."""
    action_type = action.get("action_type")
    data_key = f"{action_type}_data" if isinstance(action_type, str) else None
    found = action.get(data_key) if data_key else None
    rest = {k: v for k, v in action.items() if k != data_key}
    return action_type, found if isinstance(found, dict) else {}, rest


def _click(raw: WebhookReceived, waba_id: str | None, number: str | None, action: Json) -> Message:
    action_type, details, rest = _action_parts(action)
    data = {
        **rest,
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
        envelope(
            raw, "marketing.link_clicked", identity, number or "", action.get("timestamp"), data
        )
    )


def _user_action(
    raw: WebhookReceived, waba_id: str | None, number: str | None, action: Json
) -> Message:
    """Any action but a link click: its own event, so that clicks count only clicks."""
    action_type, details, rest = _action_parts(action)
    data = {**rest, "waba_id": waba_id, "phone_number_id": number, "action_data": details}
    identity = {
        "phone_number_id": number,
        "action_type": action_type,
        "action_data": canonical(details),
        "timestamp": str(action.get("timestamp")),
    }
    return MarketingUserActionRecorded.model_validate(
        envelope(
            raw,
            "marketing.user_action_recorded",
            identity,
            number or "",
            action.get("timestamp"),
            data,
        )
    )


def _inbound(
    raw: WebhookReceived, waba_id: str | None, number: str | None, message: Json, who: Identity
) -> Message:
    data = {
        "wamid": message.get("id"),
        "waba_id": waba_id,
        "phone_number_id": number,
        "from": who.wa_id,
        "from_user_id": who.user_id,
        "from_parent_user_id": who.parent_user_id,
        "timestamp": message.get("timestamp"),
        "message_type": message.get("type"),
        "message": message,
        "contact": who.contact,
    }
    identity = {"wamid": message.get("id")}
    return MessageReceived.model_validate(
        envelope(
            raw,
            "message.received",
            identity,
            str(message.get("id")),
            message.get("timestamp"),
            data,
            version=2,
        )
    )


def echoes(
    raw: WebhookReceived, waba_id: str | None, entry: Json, value: Json
) -> Iterator[Message]:
    """``smb_message_echoes``: what the business sent from the WhatsApp Business app."""
    number = text(metadata(value).get("phone_number_id"))
    contacts = items(value, "contacts")
    found = items(value, "message_echoes")
    for index, echo in enumerate(found):
        who = identify(echo, "echo", contacts, index, len(found))
        build = partial(_echo, raw, waba_id, number, echo, who)
        yield guard(raw, waba_id, "smb_message_echoes", echo, build)


def _echo(
    raw: WebhookReceived, waba_id: str | None, number: str | None, echo: Json, who: Identity
) -> Message:
    data = {
        "wamid": echo.get("id"),
        "waba_id": waba_id,
        "phone_number_id": number,
        "from": text(echo.get("from")),
        "to": who.wa_id,
        "to_user_id": who.user_id,
        "to_parent_user_id": who.parent_user_id,
        "timestamp": echo.get("timestamp"),
        "message_type": echo.get("type"),
        "message": echo,
        "contact": who.contact,
    }
    identity = {"wamid": echo.get("id")}
    return MessageEchoed.model_validate(
        envelope(raw, "message.echoed", identity, str(echo.get("id")), echo.get("timestamp"), data)
    )
