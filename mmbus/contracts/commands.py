"""Commands: what other services ask mmbus to do (imperative names)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from mmbus.contracts.envelope import Frozen, Message
from mmbus.contracts.fields import (
    JSON_INTEGER,
    MSISDN_INPUT_PATTERN,
    GraphId,
    Instant,
    JsonBool,
    JsonFloat,
    JsonSchema,
    LanguageCode,
    TemplateName,
    Uuid,
)
from mmbus.contracts.phone import digits_only, normalize_msisdn

# Validation context key: the record is re-read from the log, not taken from a publisher.
TRUSTED_LOG = "trusted_log"
# MM API message validity period (message_send_ttl_seconds): 12 hours to 30 days.
TTL_MIN_S, TTL_MAX_S = 12 * 3600, 30 * 24 * 3600
# Our guard on per_message_bid_multiplier; Meta validates the authoritative range.
BID_MULTIPLIER_MIN, BID_MULTIPLIER_MAX = 0.01, 10.0
# Meta truncates biz_opaque_callback_data at 512 characters; the sender adds its own
# reference (the command id) beside what the caller passes.
CALLBACK_DATA_MAX = 400

TemplateCategory = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
Route = Literal["auto", "marketing_messages", "cloud_api"]
ProductPolicy = Literal["CLOUD_API_FALLBACK", "STRICT"]
Provider = Literal["meta", "360dialog"]


def _msisdn(value: str, info: ValidationInfo) -> str:
    if info.context and info.context.get(TRUSTED_LOG):
        # Re-reading our own log (projections, replay): the sender validated the number
        # when it acted on the command; only the cheap normalisation is repeated.
        return digits_only(value)
    return normalize_msisdn(value)


# The pattern is what normalize_msisdn takes apart (separators, a 00 prefix, a digit
# count); whether the number exists in its region only phonenumbers can say.
Msisdn = Annotated[str, AfterValidator(_msisdn), JsonSchema(pattern=MSISDN_INPUT_PATTERN)]


class TemplateLanguage(Frozen):
    code: LanguageCode = Field(description="Template language code, e.g. 'en' or 'en_US'.")
    policy: Literal["deterministic"] | None = None


# Meta's component objects stay open; only the 'type' the sender relies on is checked.
Component = Annotated[
    dict[str, Any],
    JsonSchema(required=["type"], properties={"type": {"type": "string"}}),
]


class TemplateRef(Frozen):
    name: TemplateName
    language: TemplateLanguage
    components: tuple[Component, ...] = Field(
        default=(), description="Template components, passed to Meta as given."
    )
    category: TemplateCategory | None = Field(
        default=None, description="If omitted, taken from the template stream or looked up."
    )

    @field_validator("components")
    @classmethod
    def _components(cls, value: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        for i, component in enumerate(value):
            if not isinstance(component.get("type"), str):
                raise ValueError(f"component {i} needs a string 'type' (header, body, button)")
        return value


class SendTemplateData(Frozen):
    command_id: Uuid = Field(
        description="UUID chosen by the caller, stored lower-case; the idempotency key of the send."
    )
    waba_id: GraphId
    phone_number_id: GraphId = Field(description="The business phone number sending it.")
    provider: Provider = "meta"
    to: Msisdn = Field(
        description=(
            "Recipient in international format, country code first; ' ', '(', ')', '.', '-', "
            "'+' and a leading 00 are removed, leaving the digits. The sender also refuses a "
            "number that is not valid in its region (per the phonenumbers library), which "
            "the pattern cannot tell."
        )
    )
    template: TemplateRef
    route: Route = "auto"
    product_policy: ProductPolicy = "CLOUD_API_FALLBACK"
    message_activity_sharing: JsonBool | None = None
    bid_multiplier: JsonFloat | None = Field(
        default=None,
        ge=BID_MULTIPLIER_MIN,
        le=BID_MULTIPLIER_MAX,
        description="Sent as bid_spec.per_message_bid_multiplier (MM API only).",
    )
    ttl_seconds: Annotated[int, Field(ge=TTL_MIN_S, le=TTL_MAX_S), JSON_INTEGER] | None = Field(
        default=None, description="message_send_ttl_seconds: 12 hours to 30 days (MM API)."
    )
    not_after: Instant | None = Field(
        default=None, description="Deadline: not sent after this instant (suppressed instead)."
    )
    campaign_id: str | None = Field(default=None, max_length=200)
    labels: dict[str, str] = Field(default_factory=dict)
    callback_data: str | None = Field(default=None, max_length=CALLBACK_DATA_MAX)


class SendTemplate(Message):
    """Send one template message to one recipient."""

    type: Literal["send.template"] = "send.template"
    version: Literal[1] = 1
    data: SendTemplateData
    key_field = "phone_number_id"
    topic_stream = "send.commands"
