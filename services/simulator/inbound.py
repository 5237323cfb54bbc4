"""``POST /_admin/inbound``: a user writes to a business number, as Meta would tell it.

The request names the number and the user (``wa_id``, or ``username_only`` for a user
known only by BSUID) and may ask for Meta's webhook-level error 131000 beside the
message (``unsupported_payload_error``).
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.simulator import webhooks
from services.simulator.world import World


class InboundRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    phone_number_id: str
    wa_id: str = Field(pattern="^[1-9][0-9]{5,18}$")
    text: str = "Hello"
    username_only: bool = Field(
        default=False, description="the user has a username: the webhook carries no phone number"
    )
    unsupported_payload_error: bool = False


def inbound_webhook(world: World, request: InboundRequest, now: int) -> dict[str, Any] | None:
    """The ``messages`` webhook of the request, or None when the number is unknown."""
    number = world.number(request.phone_number_id)
    if number is None:
        return None
    return webhooks.inbound_text(
        waba_id=number.waba_id,
        phone_number_id=number.id,
        display_phone_number=number.display_phone_number,
        wamid=f"wamid.SIMIN{secrets.token_hex(12).upper()}",
        text=request.text,
        timestamp=now,
        wa_id=None if request.username_only else request.wa_id,
        user_id=webhooks.bsuid_of(request.wa_id, number.waba_id),
        unsupported_payload_error=request.unsupported_payload_error,
    )
