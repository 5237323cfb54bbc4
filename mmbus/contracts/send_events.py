"""Events the sender publishes (past tense), co-partitioned with the commands."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmbus.contracts.commands import ProductPolicy, Provider
from mmbus.contracts.envelope import Frozen, Message
from mmbus.contracts.fields import (
    GraphId,
    Instant,
    JsonBool,
    JsonInt,
    LanguageCode,
    MsisdnDigits,
    TemplateName,
    Uuid,
)

Endpoint = Literal["marketing_messages", "messages"]
SuppressionRule = Literal[
    "user_stopped_marketing",
    "us_recipient_marketing",
    "sanctioned_region",
    "deadline_passed",
    "template_not_synced",
]


class Decision(Frozen):
    """Why the sender did what it did: every send event carries its decision."""

    endpoint: Endpoint | None = Field(description="The API endpoint chosen, if any.")
    product_policy: ProductPolicy | None = None
    category: str | None = Field(default=None, description="Template category used to decide.")
    onboarding_status: str | None = Field(
        default=None, description="The WABA's onboarding state the decision relied on."
    )
    reasons: tuple[str, ...] = Field(default=(), description="Each rule that applied, in order.")


class SendRef(Frozen):
    """What a send event repeats of its command, as the validated command had it."""

    command_id: Uuid
    waba_id: GraphId
    phone_number_id: GraphId
    to: MsisdnDigits = Field(description="The recipient, normalised: digits, country code first.")
    provider: Provider = "meta"
    campaign_id: str | None = None
    template_name: TemplateName | None = None
    template_language: LanguageCode | None = None


class SendAttemptedData(SendRef):
    attempt: JsonInt = Field(ge=1)
    decision: Decision


class SendAcceptedDataV1(SendRef):
    attempt: JsonInt = Field(ge=1)
    decision: Decision
    wamid: str
    wa_id: str | None = None
    http_status: JsonInt


class SendAcceptedData(SendAcceptedDataV1):
    """v2 adds the ``message_status`` the API answered (MM API can hold a message)."""

    message_status: Literal["accepted", "held_for_quality_assessment"] | str | None = Field(
        default=None, description="None when unknown (events written as v1)."
    )
    requested_at: Instant | None = Field(
        default=None, description="When the accepted call left the sender (None before v2)."
    )


class ApiError(Frozen):
    code: JsonInt | None = None
    title: str | None = None
    message: str | None = None
    details: str | None = None
    http_status: JsonInt | None = None
    fbtrace_id: str | None = None


class SendFailedData(SendRef):
    attempt: JsonInt = Field(ge=1)
    decision: Decision
    error: ApiError
    retryable: JsonBool = Field(
        description="True if it failed only after the retry budget ran out."
    )


AttemptFailure = Literal["retryable_error", "stopped_before_call"]


class SendAttemptFailedData(SendRef):
    attempt: JsonInt = Field(ge=1)
    decision: Decision
    reason: AttemptFailure = Field(
        description=(
            "retryable_error: the API answered with an error worth retrying (it has no "
            "message); stopped_before_call: the sender stopped (partition revoked, "
            "shutdown) after recording the attempt and before calling."
        )
    )
    error: ApiError | None = Field(
        default=None, description="The API's answer, for retryable_error."
    )
    retry_in_s: float | None = Field(
        default=None,
        ge=0,
        description="The back-off before the next attempt, when this sender goes on.",
    )


class SendSuppressedData(SendRef):
    rule: SuppressionRule
    detail: str
    decision: Decision


class SendRejectedData(Frozen):
    # Not a Uuid nor a GraphId: for an invalid command these are what it carried.
    command_id: str | None = Field(
        description="The command's command_id as it was sent, even when invalid; "
        "None when unreadable."
    )
    phone_number_id: str | None = Field(
        default=None, description="The command's phone_number_id as it was sent, even when invalid."
    )
    reason: str
    errors: tuple[str, ...] = ()
    dead_letter_topic: str | None = Field(
        default=None, description="Set when the record itself was unreadable and dead-lettered."
    )
    decision: Decision | None = Field(
        default=None, description="Set when a valid command broke a sending rule."
    )


class SendIndeterminateDataV1(SendRef):
    attempt: JsonInt = Field(ge=1)
    decision: Decision
    cause: Literal["read_timeout_after_send", "attempt_without_result_on_restart"]
    detail: str


IndeterminateCause = Literal[
    "read_timeout_after_send",
    "connection_lost_after_send",
    "answer_without_message_id",
    "attempt_without_result_on_restart",
]


class SendIndeterminateData(SendRef):
    """v2 names why the outcome is unknown; v1 called every in-call case a read timeout."""

    attempt: JsonInt = Field(ge=1)
    decision: Decision
    cause: IndeterminateCause
    detail: str


class _SendEvent(Message):
    key_field = "phone_number_id"
    topic_stream = "send.events"


class SendAttempted(_SendEvent):
    """Durable before the HTTP call: the proof an attempt may have reached the API."""

    type: Literal["send.attempted"] = "send.attempted"
    version: Literal[1] = 1
    data: SendAttemptedData


class SendAttemptFailed(_SendEvent):
    """Not terminal: the attempt ended and the API does not have the message from it.

    It closes its ``send.attempted``, so a partition's next owner resends the
    command (the next attempt number) instead of reporting an open attempt as
    ``send.indeterminate``; auditors see what each failed attempt was answered.
    """

    type: Literal["send.attempt_failed"] = "send.attempt_failed"
    version: Literal[1] = 1
    data: SendAttemptFailedData


class SendAcceptedV1(_SendEvent):
    type: Literal["send.accepted"] = "send.accepted"
    version: Literal[1] = 1
    data: SendAcceptedDataV1


class SendAccepted(_SendEvent):
    type: Literal["send.accepted"] = "send.accepted"
    version: Literal[2] = 2
    data: SendAcceptedData


class SendFailed(_SendEvent):
    type: Literal["send.failed"] = "send.failed"
    version: Literal[1] = 1
    data: SendFailedData


class SendSuppressed(_SendEvent):
    type: Literal["send.suppressed"] = "send.suppressed"
    version: Literal[1] = 1
    data: SendSuppressedData


class SendRejected(_SendEvent):
    type: Literal["send.rejected"] = "send.rejected"
    version: Literal[1] = 1
    data: SendRejectedData

    def record_key(self) -> bytes:
        # An unreadable command may lack its phone number id; it still needs a key.
        return (self.data.phone_number_id or self.data.command_id or "unknown").encode()


class SendIndeterminateV1(_SendEvent):
    """The API may or may not have the message; reconciled later from status webhooks."""

    type: Literal["send.indeterminate"] = "send.indeterminate"
    version: Literal[1] = 1
    data: SendIndeterminateDataV1


class SendIndeterminate(_SendEvent):
    """The API may or may not have the message; reconciled later from status webhooks."""

    type: Literal["send.indeterminate"] = "send.indeterminate"
    version: Literal[2] = 2
    data: SendIndeterminateData
