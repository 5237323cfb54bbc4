"""The conformance corpus: every webhook shape mmbus knows, and the events each must yield.

Each ``corpus/<case>.json`` has ``about`` and ``source`` (where the shape comes from:
Meta's reference, the seeds, or real traffic where it differs), the ``webhook`` body,
and the ``events`` it must yield, in order. Every field an expected event lists is
checked against the event as published (its JSON), exactly; ``"$raw"`` stands for
the raw record's id. ``same_ids_as`` names a case whose events must get the same
ids (a real-traffic spelling of a documented shape). Files are read with the codec's
parser, so integers beyond 64 bits stay exact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mmbus.contracts.codec import decode, dumps, encode, loads
from mmbus.contracts.envelope import Message
from mmbus.contracts.webhook_events import WebhookReceived
from services.ingest.normalize import HANDLERS, UNTYPED, normalize
from services.ingest.verification import raw_record

CORPUS = Path(__file__).parent / "corpus"
CASES: dict[str, dict[str, Any]] = {
    path.stem: loads(path.read_bytes()) for path in sorted(CORPUS.glob("*.json"))
}
RECEIVED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
_ABSENT = object()

STATUSES = {"sent", "delivered", "read", "failed", "deleted", "warning"}
INBOUND_TYPES = {
    "text", "image", "audio", "video", "document", "sticker", "location", "contacts",
    "interactive", "button", "reaction", "order", "system", "unsupported", "request_welcome",
}  # fmt: skip
INGEST_TYPES = {
    "message.status", "marketing.link_clicked", "marketing.user_action_recorded",
    "account.updated", "user.marketing_preference_changed", "template.status_changed",
    "template.category_changed", "template.quality_changed", "template.components_changed",
    "message.received", "message.echoed", "webhook.unrecognized", "webhook.errors_reported",
}  # fmt: skip


def raw_of(webhook: Any) -> WebhookReceived:
    """The raw record the receiver would have written for this body."""
    body = dumps(webhook)
    return raw_record(
        body,
        parsed=webhook,
        received_at=RECEIVED,
        source="meta",
        path="/webhooks/meta",
        verdict="valid",
        key_index=0,
        content_type="application/json",
    )


def published(event: Message) -> dict[str, Any]:
    """The event as a consumer reads it: its record's JSON."""
    value: dict[str, Any] = loads(encode(event).value)
    return value


def _resolve(expected: Any, raw: WebhookReceived) -> Any:
    return raw.id if expected == "$raw" else expected


def _changes(case: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for entry in case["webhook"]["entry"] for c in entry["changes"]]


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_yields_its_events_field_by_field(name: str) -> None:
    case = CASES[name]
    raw = raw_of(case["webhook"])
    events = normalize(raw)
    assert [e.type for e in events] == [x["type"] for x in case["events"]], name
    for index, (event, expected) in enumerate(zip(events, case["events"], strict=True)):
        actual = published(event)
        where = f"{name} event {index} ({event.type})"
        assert actual["causation_id"] == raw.id, where
        for key, value in expected.items():
            if key != "data":
                assert actual[key] == value, f"{where}: {key}"
        for key, value in expected.get("data", {}).items():
            got = actual["data"].get(key, _ABSENT)
            assert got == _resolve(value, raw), f"{where}: data.{key} is {got!r}"
        assert decode(encode(event).value, encode(event).headers) == event, where


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if "same_ids_as" in c))
def test_a_real_traffic_spelling_gives_the_documented_shapes_ids(name: str) -> None:
    other = CASES[CASES[name]["same_ids_as"]]
    ours = [e.id for e in normalize(raw_of(CASES[name]["webhook"]))]
    assert ours == [e.id for e in normalize(raw_of(other["webhook"]))]


def test_every_case_says_what_it_is_and_where_its_shape_comes_from() -> None:
    assert len(CASES) >= 60
    for name, case in CASES.items():
        assert case["about"].strip(), name
        assert case["source"].strip(), name
        assert case["events"], name


def test_the_corpus_covers_every_field_status_message_type_and_event() -> None:
    changes = [c for case in CASES.values() for c in _changes(case)]
    fields = {c["field"] for c in changes}
    assert set(HANDLERS) | set(UNTYPED) <= fields, set(HANDLERS) | set(UNTYPED) - fields
    values = [c["value"] for c in changes if c["field"] == "messages"]
    statuses = {s["status"] for v in values for s in v.get("statuses", [])}
    assert statuses >= STATUSES, STATUSES - statuses
    types = {m["type"] for v in values for m in v.get("messages", [])}
    assert types >= INBOUND_TYPES, INBOUND_TYPES - types
    assert any("errors" in v and "messages" in v for v in values), "an error beside a message"
    produced = {x["type"] for case in CASES.values() for x in case["events"]}
    assert produced == INGEST_TYPES, produced ^ INGEST_TYPES
