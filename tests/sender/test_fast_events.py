"""The send path's unvalidated event builders equal the validated ones, field and byte.

:mod:`services.sender.fast_events` assembles ``send.attempted`` and
``send.accepted`` without validation; :mod:`services.sender.results` builds the
same events through pydantic. Over a table of commands (every optional field
set or not, both providers, numbers of several regions, upper-case ids) and
answers, the two must give equal models, the same fields set, and the same
record once encoded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from mmbus.contracts.codec import encode
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import ApiError, Decision
from mmbus.publisher import send_template
from services.sender import fast_events, results
from services.sender.outcomes import Delivered

NOW = datetime(2026, 3, 2, 9, 15, 4, 123456, tzinfo=UTC)
LATER = datetime(2026, 3, 2, 10, 15, 5, tzinfo=timezone(timedelta(hours=1)))

COMMANDS: list[dict[str, Any]] = [
    {},
    {"to": "+44 7911 123456", "campaign_id": "spring-26"},
    {"to": "(+1) 650-555-0123", "provider": "360dialog", "language": "en"},
    {"to": "0039 06 6982 1234", "category": "UTILITY", "components": [{"type": "body"}]},
    {"command_id": "0E2B7F5C-9D7A-4E5B-8C3D-2A1B0C9D8E7F", "labels": {"team": "growth"}},
    {"bid_multiplier": 1.5, "ttl_seconds": 86_400, "callback_data": "ref-ü-✓"},
    {"language_policy": "deterministic", "campaign_id": ""},
]
DECISIONS = [
    Decision(
        endpoint="marketing_messages",
        product_policy="CLOUD_API_FALLBACK",
        category="MARKETING",
        onboarding_status="ONBOARDED",
        reasons=("template category MARKETING from the command", "WABA onboarded"),
    ),
    Decision(endpoint="messages", category="UTILITY", reasons=()),
]
ANSWERS = [
    Delivered(
        wamid="wamid.HBgLMTY1MDU1NTAxMjMVAgARGBI5QTND",
        wa_id="447911123456",
        message_status="accepted",
        http_status=200,
    ),
    Delivered(wamid="wamid.x", wa_id=None, message_status=None, http_status=200),
    Delivered(
        wamid="wamid.ü", wa_id="1", message_status="held_for_quality_assessment", http_status=200
    ),
]


def command(fields: dict[str, Any]) -> SendTemplate:
    options = dict(fields)
    policy = options.pop("language_policy", None)
    made = send_template(
        waba_id="102290129340398",
        phone_number_id=options.pop("phone_number_id", "106540352242922"),
        to=options.pop("to", "447911123457"),
        template_name="spring_sale",
        language=options.pop("language", "en_US"),
        category=options.pop("category", "MARKETING"),
        source="tests",
        **options,
    )
    if policy is None:
        return made
    data = made.data.model_dump()
    data["template"]["language"]["policy"] = policy
    return SendTemplate.model_validate({**made.model_dump(), "data": data})


def same(fast: Message, slow: Message) -> None:
    slow = slow.model_copy(update={"id": fast.id})  # attempted's id is random
    assert type(fast) is type(slow)
    assert type(fast.data) is type(slow.data)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.data.model_fields_set == slow.data.model_fields_set
    assert encode(fast) == encode(slow)
    # The sender's encoder writes the same record as the codec, for either of them.
    assert fast_events.encode(fast) == encode(slow)
    assert fast_events.encode(slow) == encode(slow)


@pytest.mark.parametrize("fields", COMMANDS)
@pytest.mark.parametrize("decision", DECISIONS)
@pytest.mark.parametrize("attempt", [1, 3])
def test_attempted_equals_the_validated_event(
    fields: dict[str, Any], decision: Decision, attempt: int
) -> None:
    cmd = command(fields)
    for now in (NOW, LATER):
        same(
            fast_events.attempted(cmd, attempt, decision, now),
            results.attempted(cmd, attempt, decision, now),
        )


@pytest.mark.parametrize("fields", COMMANDS)
@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("requested_at", [NOW, LATER], ids=["utc", "plus-one"])
def test_accepted_equals_the_validated_event(
    fields: dict[str, Any], answer: Delivered, requested_at: datetime
) -> None:
    cmd = command(fields)
    tried = results.attempted(cmd, 2, DECISIONS[0], NOW)
    same(
        fast_events.accepted(cmd, tried, answer, requested_at, LATER),
        results.accepted(cmd, tried, answer, requested_at, LATER),
    )


def test_other_events_are_encoded_by_the_codec() -> None:
    cmd = command({"campaign_id": "c"})
    error = ApiError(code=131026, http_status=400, message="undeliverable")
    failed = results.failed(cmd, DECISIONS[0], error, 1, NOW, retryable=False)
    assert fast_events.encode(failed) == encode(failed)


@pytest.mark.parametrize(
    ("attempt", "now", "why"),
    [(0, NOW, "attempt"), (True, NOW, "attempt"), (1, NOW.replace(tzinfo=None), "timezone")],
    ids=["attempt-0", "attempt-bool", "naive-time"],
)
def test_what_validation_refuses_the_fast_path_refuses(
    attempt: Any, now: datetime, why: str
) -> None:
    cmd = command({})
    with pytest.raises(ValidationError):
        results.attempted(cmd, attempt, DECISIONS[0], now)
    with pytest.raises(ValueError, match=why):
        fast_events.attempted(cmd, attempt, DECISIONS[0], now)


@pytest.mark.parametrize(
    "answer",
    [
        Delivered(wamid=7, wa_id=None, message_status=None, http_status=200),  # type: ignore[arg-type]
        Delivered(wamid="w", wa_id=44, message_status=None, http_status=200),  # type: ignore[arg-type]
        Delivered(wamid="w", wa_id=None, message_status=1, http_status=200),  # type: ignore[arg-type]
    ],
    ids=["wamid-number", "wa_id-number", "status-number"],
)
def test_an_answer_validation_refuses_is_refused(answer: Delivered) -> None:
    cmd = command({})
    tried = results.attempted(cmd, 1, DECISIONS[0], NOW)
    with pytest.raises(ValidationError):
        results.accepted(cmd, tried, answer, NOW, NOW)
    with pytest.raises(ValueError, match="must be"):
        fast_events.accepted(cmd, tried, answer, NOW, NOW)


@pytest.mark.parametrize(
    "microsecond", [0, 1, 10, 100, 1_000, 10_000, 100_000, 120_000, 500_000, 999_999]
)
def test_instants_are_spelt_as_the_codec_spells_them(microsecond: int) -> None:
    """The encoder writes UTC instants itself; every pattern of trailing zeros must
    come out as pydantic's JSON mode writes it."""
    cmd = command({})
    tried = results.attempted(cmd, 1, DECISIONS[0], NOW)
    for zone in (UTC, timezone(timedelta(hours=-3))):
        at = NOW.replace(microsecond=microsecond, tzinfo=zone)
        fast = fast_events.accepted(cmd, tried, ANSWERS[0], at, at)
        assert fast_events.encode(fast) == encode(fast)
        attempt = fast_events.attempted(cmd, 2, DECISIONS[1], at)
        assert fast_events.encode(attempt) == encode(attempt)
