"""The query API's response bodies, as pydantic models: its OpenAPI document is made from them.

Every model forbids fields it does not declare, so a read model that grows a
field the document does not describe fails the API's tests instead of
reaching clients undocumented.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_LIMIT = 1000  # the largest page a list answers

State = Literal[
    "requested",
    "accepted",
    "sent",
    "delivered",
    "read",
    "failed",
    "suppressed",
    "rejected",
    "indeterminate",
]
Outcome = Literal["accepted", "failed", "suppressed", "rejected", "indeterminate"]
Status = Literal["sent", "delivered", "read", "failed"]
OnboardingStatus = Literal["onboarded", "eligible", "not_eligible", "unknown"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(Model):
    """An error: what was wrong, and for a bad query parameter, which one."""

    error: str
    parameter: str | None = Field(default=None, description="The query parameter at fault (400).")


class Page(Model):
    next: str | None = Field(description="Pass as `after` for the next page; null on the last.")


# ------------------------------------------------------------------ messages
class Pricing(Model):
    category: str | None
    billable: bool | None
    type: str | None
    model: str | None


class Step(Model):
    time: datetime
    id: str = Field(description="The event id.")
    type: str = Field(description="The event type, e.g. send.accepted.")
    what: str


class MessageDetail(Model):
    key: str
    command_id: str | None
    wamid: str | None
    waba_id: str | None
    phone_number_id: str | None
    recipient: str | None = Field(description="The user's phone number (unmasked: an API).")
    provider: str | None
    campaign_id: str | None
    template_name: str | None
    template_language: str | None
    tracking_token: str | None
    endpoint: str | None = Field(description="marketing_messages (MM API) or messages (Cloud API).")
    requested_at: datetime | None
    outcome: Outcome | None = Field(description="The sender's verdict.")
    outcome_detail: str | None
    status: Status | None = Field(description="The furthest status Meta reported.")
    times: dict[str, datetime] = Field(description="When each state was first reached.")
    pricing: Pricing | None
    error_code: int | None
    error_title: str | None
    history: list[Step]
    state: State
    fell_back: bool = Field(description="Sent to /marketing_messages but priced as Cloud API.")


class MessagePage(Page):
    items: list[MessageDetail]


# ------------------------------------------------------------------ campaigns
class Stages(Model):
    requested: int
    accepted: int
    sent: int
    delivered: int
    read: int
    failed: int
    suppressed: int
    rejected: int
    indeterminate: int
    fell_back: int
    clicked: int


class Rates(Model):
    """Shares in [0, 1]; null while the stage before has nothing."""

    accepted: float | None = Field(description="accepted / requested")
    delivered: float | None = Field(description="delivered / accepted")
    read: float | None = Field(description="read / delivered")
    clicked: float | None = Field(description="clicked / delivered")
    failed: float | None = Field(description="failed / requested")


class Funnel(Model):
    campaign_id: str
    funnel: Stages
    rates: Rates
    billable_by_category: dict[str, int]
    by_route: dict[str, dict[str, int]]
    by_template: dict[str, dict[str, int]]
    by_day: dict[str, dict[str, int]] = Field(description="By the day each message was requested.")


class CampaignSummary(Model):
    campaign_id: str
    first_day: str
    last_day: str
    funnel: Stages
    rates: Rates
    billable: int


class CampaignList(Model):
    items: list[CampaignSummary]


class Point(Model):
    start: datetime
    delivered: int
    read: int
    clicked: int


class Timeline(Model):
    campaign_id: str
    bucket_seconds: int
    points: list[Point] = Field(description="Every bucket from the first event to the last.")


# ------------------------------------------------------------------ billing
class RouteBilling(Model):
    route: str = Field(description="marketing_messages, messages or not_sent")
    api: str = Field(description="MM API, Cloud API or not sent")
    requested: int
    accepted: int
    sent: int
    delivered: int
    read: int
    failed: int
    fell_back: int
    billable: int
    billable_by_category: dict[str, int]


class Billing(Model):
    campaign_id: str | None = Field(description="null: every campaign.")
    routes: list[RouteBilling]
    billable_by_category: dict[str, int]
    billable: int
    fell_back: int


# ------------------------------------------------------------------ errors
class FailureGroup(Model):
    code: int | None = Field(description="Meta's error code.")
    title: str | None = Field(description="Meta's error title.")
    count: int
    examples: list[str] = Field(description="Up to five message keys (command ids).")


class SuppressionGroup(Model):
    rule: str
    count: int
    examples: list[str]


class RejectionGroup(Model):
    reason: str
    count: int
    examples: list[str]


class Unclear(Model):
    key: str
    command_id: str | None
    wamid: str | None
    campaign_id: str | None
    since: datetime
    state: State
    resolution: Literal["open", "status_webhook", "later_attempt"]
    reconciled: bool


class ErrorReport(Model):
    campaign_id: str | None
    failures: list[FailureGroup]
    suppressions: list[SuppressionGroup]
    rejections: list[RejectionGroup]
    indeterminate: list[Unclear]


# ------------------------------------------------------------------ onboarding
class WabaOnboarding(Model):
    waba_id: str
    status: OnboardingStatus
    meta_status: str | None = Field(description="Meta's own value when one was seen.")
    since: datetime | None
    because: str | None = Field(description="The event id that set the status.")
    via: Literal["waba", "portfolio", "none"]
    business_id: str | None
    phone_numbers: list[str]


class WabaPage(Page):
    items: list[WabaOnboarding]


class NumberOnboarding(Model):
    phone_number_id: str
    waba_id: str
    status: OnboardingStatus = Field(description="Inherited from the WABA.")
    since: datetime | None
    because: str | None
    first_seen: datetime
    first_seen_because: str


class PortfolioOnboarding(Model):
    business_id: str
    terms_signed_at: datetime | None
    because: str | None
    signed_via_waba: str | None
    wabas: list[str]


class Onboarding(Model):
    portfolios: list[PortfolioOnboarding]
    wabas: list[WabaOnboarding]
    numbers: list[NumberOnboarding]


# ------------------------------------------------------------------ the rest
class Recipient(Model):
    user_id: str
    stopped_marketing: bool
    since: datetime | None
    because: str | None


class RecipientPage(Page):
    items: list[Recipient]


class Template(Model):
    waba_id: str
    name: str
    category: str | None
    status: str | None
    approved_at: datetime | None
    last_used_at: datetime | None


class Clicks(Model):
    tracking_token: str
    campaign_id: str | None
    clicks: int
    by_day: dict[str, int]


class Readiness(Model):
    ready: bool
    lag: int | None = Field(default=None, description="Records between the store and the log.")
    read: int | None = None
    failed: str | None = None
    anomalies: dict[str, int] = Field(default_factory=dict)


class Health(Readiness):
    status: Literal["ok", "failed"]
