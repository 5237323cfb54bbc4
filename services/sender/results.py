"""The events the sender writes, built by pure functions: one place fills every envelope.

Each builder takes what it needs (the command, the decision, the API's answer,
the time) and returns a frozen event; nothing here publishes, logs or reads a
clock. Ids that must come out the same when a restarted sender writes the event
again are derived from what identifies it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from mmbus.contracts.commands import SendTemplate, SendTemplateData
from mmbus.contracts.envelope import Message, derive_id, new_id
from mmbus.contracts.send_events import (
    ApiError,
    Decision,
    SendAccepted,
    SendAttempted,
    SendAttemptFailed,
    SendFailed,
    SendIndeterminate,
    SendRejected,
    SendSuppressed,
)
from mmbus.contracts.webhook_events import (
    AccountOnboardingObserved,
    TemplateCategoryObserved,
)
from services.sender.outcomes import Delivered, Unknown
from services.sender.routing import Reject, Suppress

SOURCE = "mmbus/sender"
E = TypeVar("E", bound=Message)


def _about(
    kind: type[E],
    command_id: str,
    now: datetime,
    *,
    cause: str | None,
    data: dict[str, Any],
    event_id: str | None = None,
) -> E:
    """An event about one command, its envelope filled the same way every time."""
    return kind.model_validate(
        {
            "id": event_id or new_id(),
            "time": now,
            "source": SOURCE,
            "subject": command_id,
            "correlation_id": command_id,
            "causation_id": cause,
            "data": data,
        }
    )


def reference(data: SendTemplateData) -> dict[str, Any]:
    """What every event about a command repeats of it, so a consumer needs no join."""
    return {
        "command_id": data.command_id,
        "waba_id": data.waba_id,
        "phone_number_id": data.phone_number_id,
        "to": data.to,
        "provider": data.provider,
        "campaign_id": data.campaign_id,
        "template_name": data.template.name,
        "template_language": data.template.language.code,
    }


def attempted(
    command: SendTemplate, attempt: int, decision: Decision, now: datetime
) -> SendAttempted:
    data = command.data
    return _about(
        SendAttempted,
        data.command_id,
        now,
        cause=command.id,
        data={**reference(data), "attempt": attempt, "decision": decision},
    )


def accepted(
    command: SendTemplate,
    attempt: SendAttempted,
    result: Delivered,
    requested_at: datetime,
    now: datetime,
) -> SendAccepted:
    data = command.data
    return _about(
        SendAccepted,
        data.command_id,
        now,
        cause=attempt.id,
        event_id=derive_id("send.accepted", {"command_id": data.command_id, "wamid": result.wamid}),
        data={
            **reference(data),
            "attempt": attempt.data.attempt,
            "decision": attempt.data.decision,
            "wamid": result.wamid,
            "wa_id": result.wa_id,
            "http_status": result.http_status,
            "message_status": result.message_status,
            "requested_at": requested_at,
        },
    )


def indeterminate(
    command: SendTemplate, attempt: SendAttempted, result: Unknown, now: datetime
) -> SendIndeterminate:
    data = command.data
    return _about(
        SendIndeterminate,
        data.command_id,
        now,
        cause=attempt.id,
        event_id=derive_id("send.indeterminate", {"command_id": data.command_id}),
        data={
            **reference(data),
            "attempt": attempt.data.attempt,
            "decision": attempt.data.decision,
            "cause": result.cause,
            "detail": result.detail,
        },
    )


def open_attempt_found(command: SendTemplate, attempts: int, now: datetime) -> SendIndeterminate:
    """A redelivered command whose last attempt has no result: it may have gone out."""
    data = command.data
    return _about(
        SendIndeterminate,
        data.command_id,
        now,
        cause=command.id,
        event_id=derive_id("send.indeterminate", {"command_id": data.command_id}),
        data={
            **reference(data),
            "attempt": attempts,
            "decision": Decision(
                endpoint=None, reasons=("restart found an attempt without result",)
            ),
            "cause": "attempt_without_result_on_restart",
            "detail": f"send.attempted #{attempts} has no result; policy do_not_resend",
        },
    )


def attempt_failed(
    command: SendTemplate,
    attempt: SendAttempted,
    now: datetime,
    *,
    error: ApiError | None = None,
    retry_in_s: float | None = None,
) -> SendAttemptFailed:
    """The attempt ended without a message: answered with ``error``, else never called."""
    data = command.data
    return _about(
        SendAttemptFailed,
        data.command_id,
        now,
        cause=attempt.id,
        event_id=derive_id(
            "send.attempt_failed",
            {"command_id": data.command_id, "attempt": attempt.data.attempt},
        ),
        data={
            **reference(data),
            "attempt": attempt.data.attempt,
            "decision": attempt.data.decision,
            "reason": "retryable_error" if error is not None else "stopped_before_call",
            "error": error,
            "retry_in_s": retry_in_s,
        },
    )


def failed(
    command: SendTemplate,
    decision: Decision,
    error: ApiError,
    attempt: int,
    now: datetime,
    *,
    retryable: bool,
) -> SendFailed:
    data = command.data
    return _about(
        SendFailed,
        data.command_id,
        now,
        cause=command.id,
        data={
            **reference(data),
            "attempt": max(1, attempt),
            "decision": decision,
            "error": error,
            "retryable": retryable,
        },
    )


def suppressed(command: SendTemplate, outcome: Suppress, now: datetime) -> SendSuppressed:
    data = command.data
    return _about(
        SendSuppressed,
        data.command_id,
        now,
        cause=command.id,
        data={
            **reference(data),
            "rule": outcome.rule,
            "detail": outcome.detail,
            "decision": outcome.decision,
        },
    )


def rejected(command: SendTemplate, outcome: Reject, now: datetime) -> SendRejected:
    data = command.data
    return _about(
        SendRejected,
        data.command_id,
        now,
        cause=command.id,
        data={
            "command_id": data.command_id,
            "phone_number_id": data.phone_number_id,
            "reason": outcome.reason,
            "errors": (outcome.detail,),
            "decision": outcome.decision,
        },
    )


def onboarding_observed(
    command: SendTemplate, answer: dict[str, Any], now: datetime
) -> AccountOnboardingObserved:
    data = command.data
    return AccountOnboardingObserved.model_validate(
        {
            "id": new_id(),
            "time": now,
            "source": SOURCE,
            "subject": data.waba_id,
            "correlation_id": data.command_id,
            "data": {
                "waba_id": data.waba_id,
                "marketing_messages_onboarding_status": answer.get(
                    "marketing_messages_onboarding_status"
                ),
                "disable_marketing_messages_on_cloud_api": answer.get(
                    "disable_marketing_messages_on_cloud_api"
                ),
                "raw": answer,
            },
        }
    )


def category_observed(
    command: SendTemplate, template: dict[str, Any], category: str, now: datetime
) -> TemplateCategoryObserved:
    data = command.data
    template_id = template.get("id")
    return TemplateCategoryObserved.model_validate(
        {
            "id": new_id(),
            "time": now,
            "source": SOURCE,
            "subject": f"{data.waba_id}:{data.template.name}",
            "correlation_id": data.command_id,
            "data": {
                "waba_id": data.waba_id,
                "name": data.template.name,
                "language": data.template.language.code,
                "template_id": str(template_id) if template_id is not None else None,
                "category": category,
                "raw": template,
            },
        }
    )
