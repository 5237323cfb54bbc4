"""Events ingest derives from Meta's webhooks, and the raw webhook record itself.

Shapes that mirror Meta's payloads are :class:`MetaShape`: unknown fields are kept,
and their values are taken as Meta sends them. Meta sends timestamps as strings or
integers of epoch seconds; both are accepted, beside RFC 3339 date-times.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from mmbus.contracts.envelope import Frozen, Message, MetaShape
from mmbus.contracts.fields import (
    JSON_INTEGER,
    GraphId,
    Instant,
    JsonInt,
    LanguageCode,
    MetaTimestamp,
    TemplateName,
)
from mmbus.contracts.fields import meta_time as meta_time  # ingest's import of it


# ------------------------------------------------------------------ raw record
class WebhookReceivedData(Frozen):
    """A webhook body exactly as received, with what ingest knew when it took it."""

    received_at: Instant
    source: Literal["meta", "360dialog"] = "meta"
    path: str
    body: str = Field(description="The body: UTF-8 text, or base64 when it was not UTF-8.")
    body_encoding: Literal["utf-8", "base64"] = "utf-8"
    signature: Literal["valid", "invalid", "missing", "not_required"]
    signature_key_index: Annotated[int, Field(ge=0), JSON_INTEGER] | None = Field(
        default=None, description="Which configured app secret verified it (rotation)."
    )
    content_type: str | None = None
    waba_id: str | None = Field(default=None, description="entry[0].id when the body had one.")


class WebhookReceived(Message):
    type: Literal["webhook.received"] = "webhook.received"
    version: Literal[1] = 1
    data: WebhookReceivedData
    topic_stream = "webhooks.raw"

    def record_key(self) -> bytes:
        return (self.data.waba_id or "unknown").encode()


# ---------------------------------------------------------------- statuses
class PricingInfo(MetaShape):
    billable: bool | None = None
    pricing_model: str | None = None
    category: str | None = Field(
        default=None, description="'marketing_lite' via MM API, 'marketing' via Cloud API."
    )
    type: str | None = None


class ConversationOrigin(MetaShape):
    type: str | None = None


class ConversationInfo(MetaShape):
    id: str | None = None
    expiration_timestamp: MetaTimestamp | None = None
    origin: ConversationOrigin | None = None


class ErrorData(MetaShape):
    details: str | None = None


class WebhookError(MetaShape):
    code: int
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None
    href: str | None = None


class MessageStatusData(MetaShape):
    wamid: str
    status: str = Field(description="sent, delivered, read, failed, deleted, warning, ...")
    timestamp: MetaTimestamp
    waba_id: str
    phone_number_id: str
    display_phone_number: str | None = None
    recipient_id: str | None = None
    recipient_user_id: str | None = Field(default=None, description="Newer user-id field.")
    pricing: PricingInfo | None = None
    conversation: ConversationInfo | None = None
    errors: tuple[WebhookError, ...] = ()
    biz_opaque_callback_data: str | None = None


class MessageStatus(Message):
    type: Literal["message.status"] = "message.status"
    version: Literal[1] = 1
    data: MessageStatusData
    key_field = "wamid"
    topic_stream = "message.status"


# ------------------------------------------------------------------- clicks
class MarketingLinkClickedData(MetaShape):
    waba_id: str
    phone_number_id: str
    timestamp: MetaTimestamp
    action_type: str = "marketing_messages_link_click"
    tracking_token: str | None = None
    click_id: str | None = None
    click_component: str | None = None
    action_data: dict[str, Any] = Field(
        default_factory=dict, description="The action's data object as Meta sent it."
    )


class MarketingLinkClicked(Message):
    type: Literal["marketing.link_clicked"] = "marketing.link_clicked"
    version: Literal[1] = 1
    data: MarketingLinkClickedData
    key_field = "phone_number_id"
    topic_stream = "marketing.clicks"


# ------------------------------------------------------------------ account
class WabaInfo(MetaShape):
    waba_id: str | None = None
    owner_business_id: str | None = None
    ad_account_id: str | None = None


class AccountUpdatedData(MetaShape):
    waba_id: str
    event: str = Field(description="e.g. MM_LITE_TERMS_SIGNED, or any other account_update event")
    timestamp: MetaTimestamp | None = None
    owner_business_id: str | None = None
    waba_info: WabaInfo | None = None
    value: dict[str, Any] = Field(default_factory=dict, description="The change value as sent.")


class AccountUpdated(Message):
    type: Literal["account.updated"] = "account.updated"
    version: Literal[1] = 1
    data: AccountUpdatedData
    key_field = "waba_id"
    topic_stream = "account"


class AccountOnboardingObservedData(Frozen):
    """The sender's own record; the values after ``waba_id`` are the Graph API's answer."""

    waba_id: GraphId
    marketing_messages_onboarding_status: str | None = Field(
        description="As the Graph API answered, e.g. ONBOARDED, ELIGIBLE, NOT_ELIGIBLE."
    )
    disable_marketing_messages_on_cloud_api: bool | None = None
    observed_via: Literal["graph_api"] = "graph_api"
    raw: dict[str, Any] = Field(default_factory=dict, description="The Graph API answer.")


class AccountOnboardingObserved(Message):
    """The sender asked the Graph API because the log knew nothing of the WABA."""

    type: Literal["account.onboarding_observed"] = "account.onboarding_observed"
    version: Literal[1] = 1
    data: AccountOnboardingObservedData
    key_field = "waba_id"
    topic_stream = "account"


# -------------------------------------------------------------- preferences
class UserMarketingPreferenceChangedData(MetaShape):
    user_id: str = Field(description="wa_id of the user (or the newer user id).")
    preference: str = Field(description="'stop' or 'resume' (others kept as sent)")
    category: str | None = Field(default=None, description="e.g. marketing_messages")
    timestamp: MetaTimestamp
    waba_id: str
    phone_number_id: str | None = None
    detail: str | None = None


class UserMarketingPreferenceChanged(Message):
    type: Literal["user.marketing_preference_changed"] = "user.marketing_preference_changed"
    version: Literal[1] = 1
    data: UserMarketingPreferenceChangedData
    key_field = "user_id"
    topic_stream = "preferences"


# ---------------------------------------------------------------- templates
class _TemplateData(MetaShape):
    waba_id: str
    template_id: str | None = None
    name: str | None = None
    language: str | None = None
    timestamp: MetaTimestamp | None = None


class TemplateStatusChangedData(_TemplateData):
    event: str = Field(description="APPROVED, REJECTED, PAUSED, DISABLED, ...")
    reason: str | None = None


class TemplateCategoryChangedData(_TemplateData):
    previous_category: str | None = None
    new_category: str


class TemplateQualityChangedData(_TemplateData):
    previous_quality_score: str | None = None
    new_quality_score: str


class _TemplateEvent(Message):
    topic_stream = "templates"

    def record_key(self) -> bytes:
        data = self.data
        return f"{data.waba_id}:{data.name or data.template_id or ''}".encode()


class TemplateStatusChanged(_TemplateEvent):
    type: Literal["template.status_changed"] = "template.status_changed"
    version: Literal[1] = 1
    data: TemplateStatusChangedData


class TemplateCategoryChanged(_TemplateEvent):
    type: Literal["template.category_changed"] = "template.category_changed"
    version: Literal[1] = 1
    data: TemplateCategoryChangedData


class TemplateQualityChanged(_TemplateEvent):
    type: Literal["template.quality_changed"] = "template.quality_changed"
    version: Literal[1] = 1
    data: TemplateQualityChangedData


class TemplateCategoryObservedData(Frozen):
    """The sender's own record of a template of a validated command, and Graph's answer."""

    waba_id: GraphId
    name: TemplateName
    language: LanguageCode
    template_id: str | None = None
    category: str = Field(description="As the Graph API answered: MARKETING, UTILITY, ...")
    observed_via: Literal["graph_api"] = "graph_api"
    raw: dict[str, Any] = Field(default_factory=dict, description="The template as answered.")


class TemplateCategoryObserved(_TemplateEvent):
    """The sender asked the Graph API because neither the command nor the log had the
    template's category; recorded so that decisions made on it are explained by the log."""

    type: Literal["template.category_observed"] = "template.category_observed"
    version: Literal[1] = 1
    data: TemplateCategoryObservedData


# ----------------------------------------------------------------- inbound
class MessageReceivedData(MetaShape):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    wamid: str
    waba_id: str
    phone_number_id: str
    from_: str = Field(alias="from")
    timestamp: MetaTimestamp
    message_type: str
    message: dict[str, Any] = Field(description="The message object as Meta sent it.")
    contact: dict[str, Any] | None = None


class MessageReceived(Message):
    type: Literal["message.received"] = "message.received"
    version: Literal[1] = 1
    data: MessageReceivedData
    key_field = "phone_number_id"
    topic_stream = "messages.inbound"


# ------------------------------------------------------------- unrecognized
class WebhookUnrecognizedData(Frozen):
    waba_id: str | None = None
    object: str | None = None
    field: str | None = None
    reason: str
    value: Any = Field(description="The unrecognised part, exactly as sent.")


class WebhookUnrecognized(Message):
    """Meta sent something we do not know yet; kept, never rejected."""

    type: Literal["webhook.unrecognized"] = "webhook.unrecognized"
    version: Literal[1] = 1
    data: WebhookUnrecognizedData
    topic_stream = "webhooks.unrecognized"

    def record_key(self) -> bytes:
        return (self.data.waba_id or "unknown").encode()


# ------------------------------------------------------------- dead letters
class DeadLetterRecordedData(Frozen):
    source_topic: str
    # -1: the bytes never were a Kafka record (ingest's unreadable webhook bodies).
    partition: JsonInt = Field(ge=-1)
    offset: JsonInt = Field(ge=-1)
    key_b64: str | None = None
    value_b64: str | None
    headers: tuple[tuple[str, str], ...] = Field(
        default=(), description="Original headers; values base64."
    )
    reason: str = Field(description="Machine-readable reason, e.g. invalid_json, unknown_type.")
    detail: str = Field(description="What was wrong, for a person.")
    errors: tuple[str, ...] = ()
    consumer: str = Field(description="Which consumer gave up on it.")


class DeadLetterRecorded(Message):
    type: Literal["dead_letter.recorded"] = "dead_letter.recorded"
    version: Literal[1] = 1
    data: DeadLetterRecordedData
    topic_stream = "dead-letters"

    def record_key(self) -> bytes:
        if self.data.key_b64:
            return base64.b64decode(self.data.key_b64)
        return f"{self.data.source_topic}:{self.data.partition}:{self.data.offset}".encode()
