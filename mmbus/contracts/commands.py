"""Commands: what other services ask mmbus to do (imperative names)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, Field, ValidationInfo, field_validator

from mmbus.contracts.envelope import Frozen, Message
from mmbus.contracts.phone import digits_only, normalize_msisdn

# Validation context key: the record is re-read from the log, not taken from a publisher.
TRUSTED_LOG = "trusted_log"
# Meta's template language codes: 'en', 'en_US', 'pt_BR', 'zh_HK', 'fil'.
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
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


def _uuid_text(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ValueError("must be a UUID (the idempotency key of the send)") from exc


def _graph_id(value: str) -> str:
    if not value.isdigit():
        raise ValueError("must be a numeric Graph API id")
    return value


GraphId = Annotated[str, AfterValidator(_graph_id)]


def _msisdn(value: str, info: ValidationInfo) -> str:
    if info.context and info.context.get(TRUSTED_LOG):
        # Re-reading our own log (projections, replay): the sender validated the number
        # when it acted on the command; only the cheap normalisation is repeated.
        return digits_only(value)
    return normalize_msisdn(value)


Msisdn = Annotated[str, AfterValidator(_msisdn)]


class TemplateLanguage(Frozen):
    code: str = Field(description="Template language code, e.g. 'en' or 'en_US'.")
    policy: Literal["deterministic"] | None = None

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not LANGUAGE_CODE.match(value):
            raise ValueError("must look like 'en' or 'en_US' (Meta's template language code)")
        return value


class TemplateRef(Frozen):
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: TemplateLanguage
    components: tuple[dict[str, Any], ...] = Field(
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
    command_id: Annotated[str, AfterValidator(_uuid_text)] = Field(
        description="UUID chosen by the caller; the idempotency key of the send."
    )
    waba_id: GraphId
    phone_number_id: GraphId = Field(description="The business phone number sending it.")
    provider: Provider = "meta"
    to: Msisdn = Field(description="Recipient, international format; normalised to digits.")
    template: TemplateRef
    route: Route = "auto"
    product_policy: ProductPolicy = "CLOUD_API_FALLBACK"
    message_activity_sharing: bool | None = None
    bid_multiplier: float | None = Field(
        default=None,
        ge=BID_MULTIPLIER_MIN,
        le=BID_MULTIPLIER_MAX,
        description="Sent as bid_spec.per_message_bid_multiplier (MM API only).",
    )
    ttl_seconds: int | None = Field(
        default=None,
        ge=TTL_MIN_S,
        le=TTL_MAX_S,
        description="message_send_ttl_seconds: 12 hours to 30 days (MM API).",
    )
    not_after: AwareDatetime | None = Field(
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
