"""What happens after a message is accepted: which webhooks, when, and Meta's quirks.

``plan(accepted, ...)`` is pure given its random source: it returns the
webhooks to deliver with their delays. Meta's quirks are reproduced on purpose:
some statuses are duplicated, some arrive out of order (``read`` before
``delivered``), and clicks come only for MM API sends with activity sharing, as does
now and then a user action that is not a click. Statuses carry the recipient's
business-scoped user ids, inside the status and beside it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.simulator import webhooks
from services.simulator.rules import Accepted
from services.simulator.world import PhoneNumber


class Behaviour(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    delivered_probability: float = Field(default=0.95, ge=0, le=1)
    read_probability: float = Field(default=0.6, ge=0, le=1)
    click_probability: float = Field(default=0.3, ge=0, le=1)
    user_action_probability: float = Field(
        default=0.05, ge=0, le=1, description="a user action that is not a link click"
    )
    duplicate_probability: float = Field(default=0.05, ge=0, le=1)
    out_of_order_probability: float = Field(default=0.05, ge=0, le=1)
    held_probability: float = Field(
        default=0.0, ge=0, le=1, description="MM API answers held_for_quality_assessment"
    )
    sent_delay_ms: float = Field(default=20, ge=0)
    delivered_delay_ms: float = Field(default=60, ge=0)
    read_delay_ms: float = Field(default=120, ge=0)
    click_delay_ms: float = Field(default=150, ge=0)
    webhook_max_attempts: int = Field(default=6, ge=1, le=50)
    webhook_retry_base_ms: float = Field(default=100, ge=1)
    webhook_retry_max_ms: float = Field(default=5_000, ge=1)


@dataclass(frozen=True)
class PlannedWebhook:
    delay_s: float
    kind: str
    payload: dict[str, Any]


def plan(
    accepted: Accepted,
    *,
    wamid: str,
    number: PhoneNumber,
    epoch_s: int,
    behaviour: Behaviour,
    rng: random.Random,
) -> list[PlannedWebhook]:
    def status(
        name: str, offset_s: int, error: tuple[int, str, str] | None = None
    ) -> dict[str, Any]:
        return webhooks.status(
            waba_id=accepted.waba_id,
            phone_number_id=accepted.phone_number_id,
            display_phone_number=number.display_phone_number,
            wamid=wamid,
            status=name,
            timestamp=epoch_s + offset_s,
            recipient_id=accepted.to,
            pricing_category=accepted.pricing_category,
            callback_data=accepted.callback_data,
            error=error,
            user_id=webhooks.bsuid_of(accepted.to, accepted.waba_id),
            parent_user_id=webhooks.bsuid_of(accepted.to, accepted.waba_id, parent=True),
        )

    ms = 1 / 1000
    out: list[PlannedWebhook] = []
    if accepted.later_failure is not None:
        f = accepted.later_failure
        out.append(
            PlannedWebhook(
                behaviour.sent_delay_ms * ms,
                "failed",
                status("failed", 1, (f.code, f.title, f.details)),
            )
        )
    else:
        out.append(PlannedWebhook(behaviour.sent_delay_ms * ms, "sent", status("sent", 1)))
        delivered = rng.random() < behaviour.delivered_probability
        read = delivered and rng.random() < behaviour.read_probability
        delivered_at, read_at = behaviour.delivered_delay_ms * ms, behaviour.read_delay_ms * ms
        if read and rng.random() < behaviour.out_of_order_probability:
            delivered_at, read_at = read_at, delivered_at
        if delivered:
            out.append(PlannedWebhook(delivered_at, "delivered", status("delivered", 2)))
        if read:
            out.append(PlannedWebhook(read_at, "read", status("read", 3)))
        if (
            accepted.route == "marketing_messages"
            and accepted.activity_sharing
            and delivered
            and rng.random() < behaviour.click_probability
        ):
            out.append(
                PlannedWebhook(
                    behaviour.click_delay_ms * ms,
                    "click",
                    webhooks.link_click(
                        waba_id=accepted.waba_id,
                        phone_number_id=accepted.phone_number_id,
                        display_phone_number=number.display_phone_number,
                        timestamp=epoch_s + 4,
                        tracking_token=accepted.template.tracking_token or f"tt-{wamid[-12:]}",
                        click_id=f"ck-{rng.getrandbits(48):012x}",
                    ),
                )
            )
        if (
            accepted.route == "marketing_messages"
            and accepted.activity_sharing
            and delivered
            and rng.random() < behaviour.user_action_probability
        ):
            out.append(
                PlannedWebhook(
                    behaviour.click_delay_ms * ms,
                    "user_action",
                    webhooks.user_action(
                        waba_id=accepted.waba_id,
                        phone_number_id=accepted.phone_number_id,
                        display_phone_number=number.display_phone_number,
                        timestamp=epoch_s + 5,
                        action_type=webhooks.OTHER_USER_ACTION,
                        data={
                            "tracking_token": accepted.template.tracking_token
                            or f"tt-{wamid[-12:]}"
                        },
                    ),
                )
            )
    duplicates = [
        PlannedWebhook(w.delay_s * 1.5 + 0.01, w.kind, w.payload)
        for w in out
        if rng.random() < behaviour.duplicate_probability
    ]
    return out + duplicates


def retry_delay_s(behaviour: Behaviour, attempt: int, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter, as a webhook sender should do."""
    cap = min(behaviour.webhook_retry_max_ms, behaviour.webhook_retry_base_ms * 2 ** (attempt - 1))
    return rng.uniform(cap / 2, cap) / 1000
