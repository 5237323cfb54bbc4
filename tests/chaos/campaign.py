"""The chaos run's world and campaign: seeded, so a failing seed can be run again.

Two portfolios (one signed the MM API terms, one not), three WABAs, six numbers;
recipients get one or two messages each (two exercise the per-recipient lanes).
Besides plain marketing and utility sends, a few commands of every other kind end
differently on purpose: a template the WABA does not have (the API refuses it), a
recipient who stopped marketing (the API refuses it), a deadline already past
(suppressed), a utility template forced onto /marketing_messages (rejected).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mmbus.contracts.commands import SendTemplate
from mmbus.publisher import send_template
from services.simulator.world import Category, PhoneNumber, Portfolio, Template, Waba, World

ONBOARDED = "1029384756473829"
NOT_ONBOARDED = "2039485766574839"
WABAS = {
    "102290129340398": ONBOARDED,
    "102290129340399": ONBOARDED,
    "203301230451409": NOT_ONBOARDED,
}
NUMBERS = {
    "106540352242922": "102290129340398",
    "106540352242923": "102290129340398",
    "106540352242924": "102290129340399",
    "106540352242925": "102290129340399",
    "207651463353033": "203301230451409",
    "207651463353034": "203301230451409",
}
# What the API allows per number, and what the sender is told to keep under.
NUMBER_LIMIT_PER_S = 400
SENDER_RATE_PER_S = 300
PAIR_LIMIT_S = 1.0
TEMPLATES: tuple[tuple[str, Category], ...] = (
    ("spring_sale", "MARKETING"),
    ("order_update", "UTILITY"),
)
STOPPED = frozenset(f"44770{i:07d}" for i in range(40))


def world() -> World:
    return World(
        portfolios=(Portfolio(id=ONBOARDED), Portfolio(id=NOT_ONBOARDED)),
        wabas=tuple(
            Waba(
                id=w,
                business_id=b,
                onboarding_status="ONBOARDED" if b == ONBOARDED else "ELIGIBLE",
            )
            for w, b in WABAS.items()
        ),
        phone_numbers=tuple(
            PhoneNumber(
                id=n,
                waba_id=w,
                display_phone_number=f"1555000{i:04d}",
                throughput_per_s=NUMBER_LIMIT_PER_S,
            )
            for i, (n, w) in enumerate(NUMBERS.items())
        ),
        templates=tuple(
            Template(
                waba_id=w,
                name=name,
                language="en_US",
                category=category,
                tracking_token=token(w) if category == "MARKETING" else None,
            )
            for w in WABAS
            for name, category in TEMPLATES
        ),
        stopped_marketing=STOPPED,
        access_tokens=frozenset({"sim-token"}),
        pair_limit_s=PAIR_LIMIT_S,
    )


def token(waba_id: str) -> str:
    """The tracking token of a WABA's marketing template: clicks name it, not a message."""
    return f"spring-{waba_id}"


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    commands: tuple[SendTemplate, ...]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(c.data.command_id for c in self.commands)


def campaign(seed: int, size: int) -> Campaign:
    rng = random.Random(seed)
    campaign_id = f"chaos-{seed}"
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"mmbus-chaos/{seed}")
    numbers = list(NUMBERS)
    past = datetime.now(UTC) - timedelta(hours=1)
    out: list[SendTemplate] = []
    recipient = 0
    while len(out) < size:
        number = numbers[recipient % len(numbers)]
        to = f"44770{recipient:07d}"  # the first 40 stopped marketing
        for _ in range(1 if rng.random() < 0.7 else 2):
            draw = rng.random()
            fields: dict[str, Any] = {}
            template, category = ("spring_sale", "MARKETING")
            if draw < 0.02:
                template = "ghost_promo"  # not in the world: the API refuses it for good
            elif draw < 0.04:
                fields["not_after"] = past
            elif draw < 0.06:
                template, category = ("order_update", "UTILITY")
                fields["route"] = "marketing_messages"
            elif draw < 0.35:
                template, category = ("order_update", "UTILITY")
            else:
                # The label ties the template's clicks to this campaign.
                fields["labels"] = {"tracking_token": token(NUMBERS[number])}
            out.append(
                send_template(
                    command_id=str(uuid.uuid5(namespace, str(len(out)))),
                    waba_id=NUMBERS[number],
                    phone_number_id=number,
                    to=to,
                    template_name=template,
                    language="en_US",
                    category=category,
                    source="chaos",
                    campaign_id=campaign_id,
                    **fields,
                )
            )
        recipient += 1
    return Campaign(campaign_id, tuple(out[:size]))
