"""route(...) by table: every rule of the design brief, with the decision it explains."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mmbus.contracts.callback import command_id_from_callback
from mmbus.contracts.commands import SendTemplateData
from mmbus.folds import RecipientState, TemplateState, WabaState
from services.sender.routing import (
    Hold,
    LookUp,
    Reject,
    RoutingPolicy,
    Send,
    Suppress,
    route,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WABA = "102290129340398"
UK, US, DE, IR, CU = "447911123456", "16505550123", "4915112345678", "989123456789", "5351234567"
ONBOARDED = WabaState(WABA, onboarding_status="ONBOARDED", disable_marketing_on_cloud_api=False)
ELIGIBLE = WabaState(WABA, onboarding_status="ELIGIBLE", disable_marketing_on_cloud_api=False)
DISABLED_ONBOARDED = WabaState(
    WABA, onboarding_status="ONBOARDED", disable_marketing_on_cloud_api=True
)
DISABLED_ELIGIBLE = WabaState(
    WABA, onboarding_status="ELIGIBLE", disable_marketing_on_cloud_api=True
)
STOPPED = RecipientState(UK, stopped_marketing=True, because="evt-1")
RESUMED = RecipientState(UK, stopped_marketing=False)


def command(category: str | None = "MARKETING", to: str = UK, **fields: Any) -> SendTemplateData:
    return SendTemplateData.model_validate(
        {
            "command_id": "6f1c1a52-1d5a-4bb8-8f7c-1c9b3e0e9d11",
            "waba_id": WABA,
            "phone_number_id": "106540352242922",
            "to": to,
            "template": {
                "name": "spring_sale",
                "language": {"code": "en_US"},
                "category": category,
            },
            **fields,
        }
    )


@dataclass(frozen=True)
class Case:
    name: str
    command: SendTemplateData
    expect: type
    waba: WabaState | None = ONBOARDED
    template: TemplateState | None = None
    recipient: RecipientState | None = None
    policy: RoutingPolicy = field(default_factory=RoutingPolicy)
    endpoint: str | None = None
    rule: str | None = None
    reason: str | None = None
    lookup: str | None = None
    held_since: datetime | None = None


CASES = [
    # category decides the endpoint
    Case("marketing, auto -> MM API", command(), Send, endpoint="marketing_messages"),
    Case("utility, auto -> Cloud API", command("UTILITY"), Send, endpoint="messages"),
    Case("authentication, auto -> Cloud API", command("AUTHENTICATION"), Send, endpoint="messages"),
    Case(
        "category from the template stream",
        command(None),
        Send,
        template=TemplateState(WABA, "spring_sale", category="UTILITY"),
        endpoint="messages",
    ),
    Case(
        "unknown category is looked up, not guessed",
        command(None),
        LookUp,
        lookup="template_category",
    ),
    Case(
        "template stream without a category",
        command(None),
        LookUp,
        template=TemplateState(WABA, "spring_sale", status="APPROVED"),
        lookup="template_category",
    ),
    # onboarding and policy
    Case(
        "WABA unknown -> ask the Graph API", command(), LookUp, waba=None, lookup="waba_onboarding"
    ),
    Case(
        "not onboarded, fallback -> MM API (Meta falls back)",
        command(),
        Send,
        waba=ELIGIBLE,
        endpoint="marketing_messages",
    ),
    Case(
        "not onboarded, STRICT -> MM API, Meta decides",
        command(product_policy="STRICT"),
        Send,
        waba=ELIGIBLE,
        endpoint="marketing_messages",
    ),
    Case("utility ignores onboarding", command("UTILITY"), Send, waba=None, endpoint="messages"),
    # disable flag (131063)
    Case(
        "disable flag, onboarded, MM API fine",
        command(),
        Send,
        waba=DISABLED_ONBOARDED,
        endpoint="marketing_messages",
    ),
    Case(
        "disable flag, marketing forced to Cloud API",
        command(route="cloud_api"),
        Reject,
        waba=DISABLED_ONBOARDED,
        reason="marketing_disabled_on_cloud_api",
    ),
    Case(
        "disable flag, not onboarded, fallback would hit it",
        command(),
        Reject,
        waba=DISABLED_ELIGIBLE,
        reason="marketing_disabled_on_cloud_api",
    ),
    Case(
        "disable flag, not onboarded, STRICT",
        command(product_policy="STRICT"),
        Send,
        waba=DISABLED_ELIGIBLE,
        endpoint="marketing_messages",
    ),
    Case(
        "disable flag does not touch utility",
        command("UTILITY"),
        Send,
        waba=DISABLED_ONBOARDED,
        endpoint="messages",
    ),
    # explicit routes and bid_spec (131061)
    Case(
        "route marketing_messages with utility",
        command("UTILITY", route="marketing_messages"),
        Reject,
        reason="not_marketing",
    ),
    Case("route cloud_api for marketing", command(route="cloud_api"), Send, endpoint="messages"),
    Case(
        "bid multiplier via MM API",
        command(bid_multiplier=1.5),
        Send,
        endpoint="marketing_messages",
    ),
    Case(
        "bid multiplier on Cloud API",
        command(route="cloud_api", bid_multiplier=1.5),
        Reject,
        reason="bid_spec_needs_mm_api",
    ),
    # suppression
    Case("US recipient, marketing", command(to=US), Suppress, rule="us_recipient_marketing"),
    Case("US recipient, utility goes", command("UTILITY", to=US), Send, endpoint="messages"),
    Case("sanctioned region, marketing", command(to=IR), Suppress, rule="sanctioned_region"),
    Case(
        "sanctioned region, utility too",
        command("UTILITY", to=CU),
        Suppress,
        rule="sanctioned_region",
    ),
    Case(
        "user stopped marketing",
        command(),
        Suppress,
        recipient=STOPPED,
        rule="user_stopped_marketing",
    ),
    Case(
        "user resumed marketing", command(), Send, recipient=RESUMED, endpoint="marketing_messages"
    ),
    Case(
        "stopped user still gets utility",
        command("UTILITY"),
        Send,
        recipient=STOPPED,
        endpoint="messages",
    ),
    Case(
        "deadline passed",
        command(not_after=NOW - timedelta(seconds=1)),
        Suppress,
        rule="deadline_passed",
    ),
    Case(
        "deadline ahead",
        command(not_after=NOW + timedelta(hours=1)),
        Send,
        endpoint="marketing_messages",
    ),
    Case(
        "deadline beats everything",
        command("UTILITY", to=CU, not_after=NOW - timedelta(days=1)),
        Suppress,
        rule="deadline_passed",
    ),
    # template sync guard
    Case(
        "new template, hold",
        command(),
        Hold,
        template=TemplateState(WABA, "spring_sale", approved_at=NOW - timedelta(minutes=3)),
        policy=RoutingPolicy("hold"),
    ),
    Case(
        "new template, warn",
        command(),
        Send,
        template=TemplateState(WABA, "spring_sale", approved_at=NOW - timedelta(minutes=3)),
        policy=RoutingPolicy("warn"),
        endpoint="marketing_messages",
    ),
    Case(
        "dormant template, hold",
        command(),
        Hold,
        template=TemplateState(WABA, "spring_sale", last_used_at=NOW - timedelta(days=8)),
        policy=RoutingPolicy("hold"),
    ),
    Case(
        "synced template goes",
        command(),
        Send,
        template=TemplateState(
            WABA,
            "spring_sale",
            approved_at=NOW - timedelta(hours=1),
            last_used_at=NOW - timedelta(days=1),
        ),
        policy=RoutingPolicy("hold"),
        endpoint="marketing_messages",
    ),
    Case(
        "new template, held until the window closed: sent",
        command(),
        Send,
        template=TemplateState(WABA, "spring_sale", approved_at=NOW - timedelta(minutes=11)),
        policy=RoutingPolicy("hold"),
        held_since=NOW - timedelta(minutes=8),
        endpoint="marketing_messages",
    ),
    Case(
        "dormant template, still inside the window it was held for",
        command(),
        Hold,
        template=TemplateState(WABA, "spring_sale", last_used_at=NOW - timedelta(days=8)),
        policy=RoutingPolicy("hold"),
        held_since=NOW - timedelta(minutes=4),
    ),
    Case(
        "dormant template, held for its window: sent",
        command(),
        Send,
        template=TemplateState(WABA, "spring_sale", last_used_at=NOW - timedelta(days=8)),
        policy=RoutingPolicy("hold"),
        held_since=NOW - timedelta(minutes=10),
        endpoint="marketing_messages",
    ),
    Case(
        "hold capped by hold_max: sent",
        command(),
        Send,
        template=TemplateState(WABA, "spring_sale", approved_at=NOW - timedelta(minutes=1)),
        policy=RoutingPolicy("hold", hold_max=timedelta(seconds=30)),
        held_since=NOW - timedelta(seconds=31),
        endpoint="marketing_messages",
    ),
    Case(
        "guard ignored",
        command(),
        Send,
        template=TemplateState(WABA, "spring_sale", approved_at=NOW - timedelta(minutes=1)),
        policy=RoutingPolicy("ignore"),
        endpoint="marketing_messages",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_route(case: Case) -> None:
    outcome = route(
        case.command, case.waba, case.template, case.recipient, case.policy, NOW, case.held_since
    )
    assert type(outcome) is case.expect, outcome
    if isinstance(outcome, LookUp):
        assert outcome.what == case.lookup
        return
    assert outcome.decision.reasons, "every decision explains itself"
    if isinstance(outcome, Send):
        assert outcome.endpoint == case.endpoint
        assert outcome.decision.endpoint == case.endpoint
    if isinstance(outcome, Suppress):
        assert outcome.rule == case.rule
    if isinstance(outcome, Reject):
        assert outcome.reason == case.reason
    if isinstance(outcome, Hold):
        assert outcome.until > NOW
        assert outcome.until <= (case.held_since or NOW) + case.policy.hold_max


def test_request_body_for_mm_api() -> None:
    data = command(
        message_activity_sharing=True, bid_multiplier=1.5, ttl_seconds=86400, callback_data="crm:1"
    )
    outcome = route(data, ONBOARDED, None, None, RoutingPolicy(), NOW)
    assert isinstance(outcome, Send)
    assert outcome.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": UK,
        "type": "template",
        "template": {"name": "spring_sale", "language": {"code": "en_US"}},
        "biz_opaque_callback_data": "mmbus:6f1c1a52-1d5a-4bb8-8f7c-1c9b3e0e9d11:crm:1",
        "product_policy": "CLOUD_API_FALLBACK",
        "message_activity_sharing": True,
        "bid_spec": {"per_message_bid_multiplier": 1.5},
        "message_send_ttl_seconds": 86400,
    }
    assert command_id_from_callback(outcome.body["biz_opaque_callback_data"]) == data.command_id


def test_cloud_api_body_carries_no_mm_fields() -> None:
    outcome = route(
        command("UTILITY", message_activity_sharing=True),
        ONBOARDED,
        None,
        None,
        RoutingPolicy(),
        NOW,
    )
    assert isinstance(outcome, Send)
    assert "product_policy" not in outcome.body
    assert "message_activity_sharing" not in outcome.body


def test_route_is_pure() -> None:
    args = (command(), ELIGIBLE, None, STOPPED, RoutingPolicy(), NOW)
    assert route(*args) == route(*args)
