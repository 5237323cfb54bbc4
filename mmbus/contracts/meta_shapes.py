"""Parts of Meta's webhook payloads that several events carry (pricing, conversation, errors).

They are :class:`MetaShape`: unknown fields are kept, values are taken as Meta
sends them.
"""

from __future__ import annotations

from pydantic import Field

from mmbus.contracts.envelope import MetaShape
from mmbus.contracts.fields import MetaTimestamp


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


class WabaInfo(MetaShape):
    waba_id: str | None = None
    owner_business_id: str | None = None
    ad_account_id: str | None = None
