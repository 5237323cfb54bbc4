"""``biz_opaque_callback_data``: how a send and its status webhooks find each other.

The sender writes ``mmbus:<command_id>`` and, after a colon, the caller's own
``callback_data``; Meta echoes it on every status webhook of that message.
"""

from __future__ import annotations

CALLBACK_PREFIX = "mmbus:"


def callback_data(command_id: str, user_data: str | None) -> str:
    return f"{CALLBACK_PREFIX}{command_id}" + (f":{user_data}" if user_data else "")


def command_id_from_callback(value: str | None) -> str | None:
    if not value or not value.startswith(CALLBACK_PREFIX):
        return None
    return value[len(CALLBACK_PREFIX) :].split(":", 1)[0] or None
