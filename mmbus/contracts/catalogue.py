"""Every message type and version mmbus knows, and how old versions become new ones.

Decoding looks a record's ``(type, version)`` up here. The newest version of a
type is what consumers get; an older stored version is upcast step by step on
read (the log is never rewritten). A newer version than we know is reported,
not guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import (
    SendAccepted,
    SendAcceptedV1,
    SendAttempted,
    SendAttemptFailed,
    SendFailed,
    SendIndeterminate,
    SendIndeterminateV1,
    SendRejected,
    SendSuppressed,
)
from mmbus.contracts.webhook_events import (
    AccountOnboardingObserved,
    AccountUpdated,
    DeadLetterRecorded,
    MarketingLinkClicked,
    MarketingUserActionRecorded,
    MessageEchoed,
    MessageReceived,
    MessageReceivedV1,
    MessageStatus,
    TemplateCategoryChanged,
    TemplateCategoryObserved,
    TemplateComponentsChanged,
    TemplateQualityChanged,
    TemplateStatusChanged,
    UserMarketingPreferenceChanged,
    WebhookErrorsReported,
    WebhookReceived,
    WebhookUnrecognized,
)

# Every model, old versions included (their schemas stay published).
MODELS: tuple[type[Message], ...] = (
    SendTemplate,
    SendAttempted,
    SendAttemptFailed,
    SendAcceptedV1,
    SendAccepted,
    SendFailed,
    SendSuppressed,
    SendRejected,
    SendIndeterminateV1,
    SendIndeterminate,
    WebhookReceived,
    MessageStatus,
    MarketingLinkClicked,
    MarketingUserActionRecorded,
    AccountUpdated,
    AccountOnboardingObserved,
    UserMarketingPreferenceChanged,
    TemplateStatusChanged,
    TemplateCategoryChanged,
    TemplateQualityChanged,
    TemplateCategoryObserved,
    TemplateComponentsChanged,
    MessageReceivedV1,
    MessageReceived,
    MessageEchoed,
    WebhookUnrecognized,
    WebhookErrorsReported,
    DeadLetterRecorded,
)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _send_accepted_v1_to_v2(envelope: dict[str, Any]) -> dict[str, Any]:
    # v1 did not record the API's message_status: it is unknown, not "accepted".
    data = dict(envelope["data"])
    data.setdefault("message_status", None)
    return {**envelope, "version": 2, "data": data}


def _send_indeterminate_v1_to_v2(envelope: dict[str, Any]) -> dict[str, Any]:
    # v1's causes are all v2 causes; v1 recorded any in-call case as a read timeout
    # (its detail says what it really was), and the log is not rewritten.
    return {**envelope, "version": 2}


def _message_received_v1_to_v2(envelope: dict[str, Any]) -> dict[str, Any]:
    # v1 always had 'from'; v2 only added optional BSUID fields (unknown for v1: absent).
    return {**envelope, "version": 2}


# (type, from_version) -> function producing from_version + 1, on the raw envelope dict.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("send.accepted", 1): _send_accepted_v1_to_v2,
    ("send.indeterminate", 1): _send_indeterminate_v1_to_v2,
    ("message.received", 1): _message_received_v1_to_v2,
}


def type_of(model: type[Message]) -> str:
    return str(model.model_fields["type"].default)


def version_of(model: type[Message]) -> int:
    return int(model.model_fields["version"].default)


BY_TYPE_VERSION: dict[tuple[str, int], type[Message]] = {
    (type_of(m), version_of(m)): m for m in MODELS
}
LATEST: dict[str, type[Message]] = {}
for _model in MODELS:
    _current = LATEST.get(type_of(_model))
    if _current is None or version_of(_model) > version_of(_current):
        LATEST[type_of(_model)] = _model


def latest_version(message_type: str) -> int | None:
    model = LATEST.get(message_type)
    return version_of(model) if model else None


def upcast(envelope: dict[str, Any]) -> dict[str, Any]:
    """Raise a raw envelope to the newest version of its type, one step at a time."""
    message_type, version = envelope["type"], envelope["version"]
    target = latest_version(message_type)
    while target is not None and version < target:
        step = UPCASTERS.get((message_type, version))
        if step is None:
            raise LookupError(f"no upcaster from {message_type} v{version} to v{version + 1}")
        envelope = step(envelope)
        version = envelope["version"]
    return envelope
