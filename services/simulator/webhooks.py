"""Meta's webhook envelopes, built as Meta sends them, and signed as Meta signs them.

Every builder returns the JSON object of one webhook POST: ``{"object":
"whatsapp_business_account", "entry": [{"id", "time", "changes": [{"field", "value"}]}]}``.

Users carry business-scoped user ids (BSUIDs) as Meta's newer payloads do: a status
has ``recipient_user_id`` inside it and ``contacts[]`` beside it (``wa_id``,
``user_id``, ``parent_user_id``), except a failed one, which has neither; an inbound
message from a user known only by BSUID has ``from_user_id`` and no ``from``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from mmbus.contracts.phone import region_of

SIGNATURE_HEADER = "X-Hub-Signature-256"
ERRORS_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
# A user action that is not a link click. Meta documents only link clicks so far; the
# name is illustrative of the kinds newer payloads may carry.
OTHER_USER_ACTION = "marketing_messages_product_view"


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 value: ``sha256=`` + HMAC-SHA256(app secret, raw body)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)


def _envelope(entry_id: str, field: str, value: dict[str, Any], time: int) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": entry_id, "time": time, "changes": [{"field": field, "value": value}]}],
    }


def _metadata(display: str, phone_number_id: str) -> dict[str, str]:
    return {"display_phone_number": display, "phone_number_id": phone_number_id}


def bsuid_of(wa_id: str, scope: str, *, parent: bool = False) -> str:
    """A stable BSUID for a user within a business: ``<ISO region>.[ENT.]<20 digits>``."""
    digest = hashlib.sha256(f"{scope}:{wa_id}:{parent}".encode()).digest()
    digits = f"{int.from_bytes(digest[:9], 'big') % 10**20:020d}"
    return f"{region_of(wa_id) or 'US'}.{'ENT.' if parent else ''}{digits}"


def _error(code: int, title: str, details: str) -> dict[str, Any]:
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": ERRORS_HREF,
    }


def status(
    *,
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    wamid: str,
    status: str,
    timestamp: int,
    recipient_id: str,
    pricing_category: str | None,
    conversation_id: str | None = None,
    callback_data: str | None = None,
    error: tuple[int, str, str] | None = None,
    user_id: str | None = None,
    parent_user_id: str | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        # Meta sends status timestamps as strings of epoch seconds.
        "timestamp": str(timestamp),
        "recipient_id": recipient_id,
    }
    if pricing_category is not None and status in {"sent", "delivered"}:
        item["conversation"] = {
            "id": conversation_id or wamid[-16:],
            "origin": {"type": pricing_category},
        }
        item["pricing"] = {
            "billable": True,
            "pricing_model": "PMP",
            "category": pricing_category,
            "type": "regular",
        }
    if callback_data is not None:
        item["biz_opaque_callback_data"] = callback_data
    if error is not None:
        item["errors"] = [_error(*error)]
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(display_phone_number, phone_number_id),
    }
    # A failed status has no contact and, sent to a phone number, no BSUID (as documented).
    if user_id is not None and status != "failed":
        item["recipient_user_id"] = user_id
        contact = {"wa_id": recipient_id, "user_id": user_id}
        if parent_user_id is not None:
            # Only beside the status: consumers must look in contacts[] too.
            contact["parent_user_id"] = parent_user_id
        value["contacts"] = [contact]
    value["statuses"] = [item]
    return _envelope(waba_id, "messages", value, timestamp)


def link_click(
    *,
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    timestamp: int,
    tracking_token: str,
    click_id: str,
    click_component: str = "CTA",
) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(display_phone_number, phone_number_id),
        "user_actions": [
            {
                "timestamp": str(timestamp),
                "action_type": "marketing_messages_link_click",
                "marketing_messages_link_click_data": {
                    "tracking_token": tracking_token,
                    "click_id": click_id,
                    "click_component": click_component,
                },
            }
        ],
    }
    return _envelope(waba_id, "messages", value, timestamp)


def user_action(
    *,
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    timestamp: int,
    action_type: str,
    data: dict[str, Any],
) -> dict[str, Any]:
    """A ``user_actions`` item of any kind, its data under ``<action_type>_data``."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(display_phone_number, phone_number_id),
        "user_actions": [
            {"timestamp": str(timestamp), "action_type": action_type, f"{action_type}_data": data}
        ],
    }
    return _envelope(waba_id, "messages", value, timestamp)


def inbound_text(
    *,
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    wamid: str,
    text: str,
    timestamp: int,
    wa_id: str | None,
    user_id: str,
    name: str = "Ada",
    unsupported_payload_error: bool = False,
) -> dict[str, Any]:
    """A text from a user; ``wa_id`` None: a user known only by BSUID (a username).

    ``unsupported_payload_error``: Meta's webhook-level error 131000 beside the message.
    """
    contact: dict[str, Any] = {"profile": {"name": name}, "user_id": user_id}
    message: dict[str, Any] = {
        "id": wamid,
        "timestamp": str(timestamp),
        "type": "text",
        "text": {"body": text},
    }
    if wa_id is None:
        contact["profile"]["username"] = f"@{name.lower()}"
        message["from_user_id"] = user_id
    else:
        contact["wa_id"] = wa_id
        message["from"] = wa_id
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(display_phone_number, phone_number_id),
        "contacts": [contact],
        "messages": [message],
    }
    if unsupported_payload_error:
        value["errors"] = [_error(131000, "Something went wrong", "Unsupported webhook payload")]
    return _envelope(waba_id, "messages", value, timestamp)


def terms_signed(*, business_id: str, waba_id: str, timestamp: int) -> dict[str, Any]:
    value = {
        "event": "MM_LITE_TERMS_SIGNED",
        "waba_info": {"owner_business_id": business_id, "waba_id": waba_id},
    }
    return _envelope(business_id, "account_update", value, timestamp)


def user_preference(
    *,
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    wa_id: str,
    stop: bool,
    timestamp: int,
    user_id: str | None = None,
) -> dict[str, Any]:
    # The BSUID only beside the preference, in contacts[]: consumers must look there too.
    contact = {"wa_id": wa_id, **({"user_id": user_id} if user_id else {})}
    value = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(display_phone_number, phone_number_id),
        "contacts": [contact],
        "user_preferences": [
            {
                "wa_id": wa_id,
                "detail": "User requested to stop marketing messages"
                if stop
                else "User requested to resume marketing messages",
                "category": "marketing_messages",
                "value": "stop" if stop else "resume",
                "timestamp": timestamp,
            }
        ],
    }
    return _envelope(waba_id, "user_preferences", value, timestamp)


def template_status(
    *,
    waba_id: str,
    template_id: str,
    name: str,
    language: str,
    event: str,
    timestamp: int,
    reason: str | None = None,
    category: str | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event": event,
        "message_template_id": int(template_id) if template_id.isdigit() else template_id,
        "message_template_name": name,
        "message_template_language": language,
        "reason": reason or "NONE",
    }
    if category is not None:
        value["message_template_category"] = category
    return _envelope(waba_id, "message_template_status_update", value, timestamp)
