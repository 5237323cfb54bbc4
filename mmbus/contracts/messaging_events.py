"""Events about messages: statuses, user actions on marketing messages, inbound messages and
echoes of what the business sent from the WhatsApp Business app.

A user is known by ``wa_id`` (the phone number) and, since 2026, by a business-scoped
user id (BSUID, e.g. ``US.13491208655302741918``) and possibly a parent BSUID; a user
with a username may be known by BSUID alone. Ingest attaches the BSUIDs from wherever
the webhook carried them: inside the item or beside it in ``value.contacts[]``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from mmbus.contracts.envelope import Message, MetaShape
from mmbus.contracts.fields import MetaTimestamp
from mmbus.contracts.meta_shapes import ConversationInfo, PricingInfo, WebhookError

_BSUID = "Business-scoped user id (BSUID), e.g. US.13491208655302741918"
_PARENT = "Parent BSUID (linked business portfolios), e.g. US.ENT.11815799212886844830"


# ---------------------------------------------------------------- statuses
class MessageStatusData(MetaShape):
    wamid: str
    status: str = Field(description="sent, delivered, read, failed, deleted, warning, ...")
    timestamp: MetaTimestamp
    waba_id: str
    phone_number_id: str
    display_phone_number: str | None = None
    recipient_id: str | None = Field(
        default=None, description="The recipient's wa_id (from the status, else its contact)."
    )
    recipient_user_id: str | None = Field(default=None, description=_BSUID)
    recipient_parent_user_id: str | None = Field(default=None, description=_PARENT)
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


# ------------------------------------------------------------- user actions
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
    """A user clicked a link of a marketing message (``marketing_messages_link_click``)."""

    type: Literal["marketing.link_clicked"] = "marketing.link_clicked"
    version: Literal[1] = 1
    data: MarketingLinkClickedData
    key_field = "phone_number_id"
    topic_stream = "marketing.clicks"


class MarketingUserActionRecordedData(MetaShape):
    waba_id: str
    phone_number_id: str
    timestamp: MetaTimestamp
    action_type: str = Field(description="Any action_type but marketing_messages_link_click.")
    action_data: dict[str, Any] = Field(
        default_factory=dict,
        description="The action's '<action_type>_data' object as Meta sent it.",
    )


class MarketingUserActionRecorded(Message):
    """A ``user_actions`` item that is not a link click: kept with its kind, never counted
    as a click."""

    type: Literal["marketing.user_action_recorded"] = "marketing.user_action_recorded"
    version: Literal[1] = 1
    data: MarketingUserActionRecordedData
    key_field = "phone_number_id"
    topic_stream = "marketing.clicks"


# ----------------------------------------------------------------- inbound
class MessageReceivedDataV1(MetaShape):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    wamid: str
    waba_id: str
    phone_number_id: str
    from_: str = Field(alias="from")
    timestamp: MetaTimestamp
    message_type: str
    message: dict[str, Any] = Field(description="The message object as Meta sent it.")
    contact: dict[str, Any] | None = None


class MessageReceivedV1(Message):
    type: Literal["message.received"] = "message.received"
    version: Literal[1] = 1
    data: MessageReceivedDataV1
    key_field = "phone_number_id"
    topic_stream = "messages.inbound"


# A sender is 'from' (wa_id) or 'from_user_id' (BSUID): written into the JSON Schema too.
_HAS_SENDER: JsonDict = {
    "anyOf": [
        {"required": ["from"], "properties": {"from": {"type": "string"}}},
        {"required": ["from_user_id"], "properties": {"from_user_id": {"type": "string"}}},
    ]
}


class MessageReceivedData(MetaShape):
    model_config = ConfigDict(
        frozen=True, extra="allow", populate_by_name=True, json_schema_extra=_HAS_SENDER
    )

    wamid: str
    waba_id: str
    phone_number_id: str
    from_: str | None = Field(
        default=None,
        alias="from",
        description="The sender's wa_id; absent for a user known only by BSUID.",
    )
    from_user_id: str | None = Field(default=None, description=_BSUID)
    from_parent_user_id: str | None = Field(default=None, description=_PARENT)
    timestamp: MetaTimestamp
    message_type: str
    message: dict[str, Any] = Field(description="The message object as Meta sent it.")
    contact: dict[str, Any] | None = Field(
        default=None, description="The value.contacts[] entry of the sender, as sent."
    )

    @model_validator(mode="after")
    def _has_a_sender(self) -> MessageReceivedData:
        if self.from_ is None and self.from_user_id is None:
            raise ValueError("a received message has a sender: 'from' or 'from_user_id'")
        return self


class MessageReceived(Message):
    """A user sent the business a message. v2: the sender may be known by BSUID alone
    ('from' optional, 'from_user_id', 'from_parent_user_id'); v1 records read as v2."""

    type: Literal["message.received"] = "message.received"
    version: Literal[2] = 2
    data: MessageReceivedData
    key_field = "phone_number_id"
    topic_stream = "messages.inbound"


# ------------------------------------------------------------------- echoes
class MessageEchoedData(MetaShape):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    wamid: str
    waba_id: str
    phone_number_id: str
    from_: str | None = Field(default=None, alias="from", description="The business number.")
    to: str | None = Field(default=None, description="The user's wa_id.")
    to_user_id: str | None = Field(default=None, description=_BSUID)
    to_parent_user_id: str | None = Field(default=None, description=_PARENT)
    timestamp: MetaTimestamp
    message_type: str
    message: dict[str, Any] = Field(description="The echoed message object as Meta sent it.")
    contact: dict[str, Any] | None = Field(
        default=None, description="The value.contacts[] entry of the user, as sent."
    )


class MessageEchoed(Message):
    """The business sent a message from the WhatsApp Business app (coexistence):
    ``smb_message_echoes``."""

    type: Literal["message.echoed"] = "message.echoed"
    version: Literal[1] = 1
    data: MessageEchoedData
    key_field = "phone_number_id"
    topic_stream = "messages.echoes"
