"""Meta's webhook envelopes, built as Meta sends them, and signed as Meta signs them.

Every builder returns the JSON object of one webhook POST: ``{"object":
"whatsapp_business_account", "entry": [{"id", "time", "changes": [{"field", "value"}]}]}``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

SIGNATURE_HEADER = "X-Hub-Signature-256"


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
        code, title, details = error
        item["errors"] = [
            {
                "code": code,
                "title": title,
                "message": title,
                "error_data": {"details": details},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }
        ]
    value = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(display_phone_number, phone_number_id),
        "statuses": [item],
    }
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
) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(display_phone_number, phone_number_id),
        "contacts": [{"wa_id": wa_id}],
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
) -> dict[str, Any]:
    value = {
        "event": event,
        "message_template_id": int(template_id) if template_id.isdigit() else template_id,
        "message_template_name": name,
        "message_template_language": language,
        "reason": reason or "NONE",
    }
    return _envelope(waba_id, "message_template_status_update", value, timestamp)
