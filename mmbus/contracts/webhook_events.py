"""Events ingest derives from Meta's webhooks, and the raw webhook record itself.

Shapes that mirror Meta's payloads are :class:`MetaShape`: unknown fields are kept,
and their values are taken as Meta sends them. Meta sends timestamps as strings or
integers of epoch seconds; both are accepted, beside RFC 3339 date-times.

The models live by subject in :mod:`~mmbus.contracts.messaging_events`,
:mod:`~mmbus.contracts.business_events`, :mod:`~mmbus.contracts.raw_events` and
:mod:`~mmbus.contracts.meta_shapes`; this module is where every team imports them from.
"""

from __future__ import annotations

from mmbus.contracts.business_events import (
    AccountOnboardingObserved,
    AccountOnboardingObservedData,
    AccountUpdated,
    AccountUpdatedData,
    TemplateCategoryChanged,
    TemplateCategoryChangedData,
    TemplateCategoryObserved,
    TemplateCategoryObservedData,
    TemplateComponentsChanged,
    TemplateComponentsChangedData,
    TemplateQualityChanged,
    TemplateQualityChangedData,
    TemplateStatusChanged,
    TemplateStatusChangedData,
    UserMarketingPreferenceChanged,
    UserMarketingPreferenceChangedData,
)
from mmbus.contracts.fields import meta_time
from mmbus.contracts.messaging_events import (
    MarketingLinkClicked,
    MarketingLinkClickedData,
    MarketingUserActionRecorded,
    MarketingUserActionRecordedData,
    MessageEchoed,
    MessageEchoedData,
    MessageReceived,
    MessageReceivedData,
    MessageReceivedDataV1,
    MessageReceivedV1,
    MessageStatus,
    MessageStatusData,
)
from mmbus.contracts.meta_shapes import (
    ConversationInfo,
    ConversationOrigin,
    ErrorData,
    PricingInfo,
    WabaInfo,
    WebhookError,
)
from mmbus.contracts.raw_events import (
    DeadLetterRecorded,
    DeadLetterRecordedData,
    WebhookErrorsReported,
    WebhookErrorsReportedData,
    WebhookReceived,
    WebhookReceivedData,
    WebhookUnrecognized,
    WebhookUnrecognizedData,
)

__all__ = [
    "AccountOnboardingObserved",
    "AccountOnboardingObservedData",
    "AccountUpdated",
    "AccountUpdatedData",
    "ConversationInfo",
    "ConversationOrigin",
    "DeadLetterRecorded",
    "DeadLetterRecordedData",
    "ErrorData",
    "MarketingLinkClicked",
    "MarketingLinkClickedData",
    "MarketingUserActionRecorded",
    "MarketingUserActionRecordedData",
    "MessageEchoed",
    "MessageEchoedData",
    "MessageReceived",
    "MessageReceivedData",
    "MessageReceivedDataV1",
    "MessageReceivedV1",
    "MessageStatus",
    "MessageStatusData",
    "PricingInfo",
    "TemplateCategoryChanged",
    "TemplateCategoryChangedData",
    "TemplateCategoryObserved",
    "TemplateCategoryObservedData",
    "TemplateComponentsChanged",
    "TemplateComponentsChangedData",
    "TemplateQualityChanged",
    "TemplateQualityChangedData",
    "TemplateStatusChanged",
    "TemplateStatusChangedData",
    "UserMarketingPreferenceChanged",
    "UserMarketingPreferenceChangedData",
    "WabaInfo",
    "WebhookError",
    "WebhookErrorsReported",
    "WebhookErrorsReportedData",
    "WebhookReceived",
    "WebhookReceivedData",
    "WebhookUnrecognized",
    "WebhookUnrecognizedData",
    "meta_time",
]
