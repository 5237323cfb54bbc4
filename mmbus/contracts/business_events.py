"""Events about the business: its account (WABA onboarding), its users' marketing
preferences and its message templates."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mmbus.contracts.envelope import Frozen, Message, MetaShape
from mmbus.contracts.fields import GraphId, LanguageCode, MetaTimestamp, TemplateName
from mmbus.contracts.meta_shapes import WabaInfo


# ------------------------------------------------------------------ account
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
    user_id: str = Field(description="wa_id of the user, else its BSUID.")
    user_bsuid: str | None = Field(
        default=None,
        description="The user's business-scoped user id (Meta's user_id), wherever the "
        "webhook carried it; user_id keeps the wa_id when both came.",
    )
    parent_user_id: str | None = Field(default=None, description="The user's parent BSUID.")
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
    """Meta's ``message_template_id``, ``_name`` and ``_language`` as ``template_id``,
    ``name`` and ``language``; every other ``message_template_*`` key is kept as sent."""

    waba_id: str
    template_id: str | None = None
    name: str | None = None
    language: str | None = None
    timestamp: MetaTimestamp | None = None


class TemplateStatusChangedData(_TemplateData):
    event: str = Field(description="APPROVED, REJECTED, PAUSED, DISABLED, ...")
    reason: str | None = None
    category: str | None = Field(
        default=None,
        description="message_template_category as Meta sent it (MARKETING, UTILITY, ...).",
    )


class TemplateCategoryChangedData(_TemplateData):
    previous_category: str | None = None
    new_category: str


class TemplateQualityChangedData(_TemplateData):
    previous_quality_score: str | None = None
    new_quality_score: str


class TemplateComponentsChangedData(_TemplateData):
    """message_template_components_update: the new element, title, footer and buttons are
    kept as Meta sent them (message_template_element, _title, _footer, _buttons)."""


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


class TemplateComponentsChanged(_TemplateEvent):
    """A template's content (body, header, footer, buttons) was edited."""

    type: Literal["template.components_changed"] = "template.components_changed"
    version: Literal[1] = 1
    data: TemplateComponentsChangedData


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
