"""Integers of any size stay exact through the codec; a stored message.received v1 reads as v2."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mmbus.contracts.codec import DecodeFailure, decode, dumps, encode, loads
from mmbus.contracts.envelope import Message, derive_id
from mmbus.contracts.webhook_events import MessageReceived
from tests.contracts.examples import load_examples

EXAMPLES = load_examples()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"a": 18446744073709551615}', {"a": 2**64 - 1}),  # orjson's own range
        (b'{"a": 18446744073709551616}', {"a": 2**64}),
        (b'{"a":-9223372036854775809}', {"a": -(2**63) - 1}),
        (b"[1, 123456789012345678901234567890]", [1, 123456789012345678901234567890]),
        (b"123456789012345678901", 123456789012345678901),
        (
            b'{"id": "US.13491208655302741918", "n": 1.5}',
            {"id": "US.13491208655302741918", "n": 1.5},
        ),
        (b'{"big float": 12345678901234567890.5}', {"big float": 12345678901234567890.5}),
        (b"null", None),
    ],
)
def test_loads_keeps_integers_exact(text: bytes, expected: Any) -> None:
    parsed = loads(text)
    assert parsed == expected
    assert type(parsed) is type(expected)
    assert loads(dumps(parsed)) == expected


def test_an_event_with_a_huge_integer_round_trips_exactly_and_has_a_stable_id() -> None:
    example = EXAMPLES["message.status.v1"]
    huge = 123456789012345678901234567890
    envelope = {**example, "data": {**example["data"], "meta_added_this": huge}}
    record = dumps(envelope)
    first = decode(record)
    assert isinstance(first, Message)
    for decoded in (first, decode(record, encode(first).headers)):  # slow path, fast path
        assert isinstance(decoded, Message)
        assert decoded.model_dump()["data"]["meta_added_this"] == huge
    identity = {"value": {"n": huge}}
    assert derive_id("x", identity) == derive_id("x", {"value": {"n": huge}})
    assert derive_id("x", identity) != derive_id("x", {"value": {"n": huge + 1}})


def test_ids_of_ordinary_identities_are_what_they_were() -> None:
    # derive_id falls back only where orjson refused: existing ids never change (this one
    # is what the implementation before the fallback derived).
    assert derive_id("message.status", {"wamid": "w", "status": "sent", "timestamp": "1"}) == (
        "0f5d00bd-3185-5f16-96af-88d56a754ab8"
    )


def test_stored_message_received_v1_reads_as_v2() -> None:
    stored = orjson.dumps(EXAMPLES["message.received.v1"])  # what an older ingest wrote
    decoded = decode(stored)
    assert isinstance(decoded, MessageReceived)
    assert decoded.version == 2
    assert decoded.data.from_ == EXAMPLES["message.received.v1"]["data"]["from"]
    assert (decoded.data.from_user_id, decoded.data.from_parent_user_id) == (None, None)


def test_a_received_message_needs_a_sender() -> None:
    example = EXAMPLES["message.received.v2"]
    data = {k: v for k, v in example["data"].items() if k not in {"from", "from_user_id"}}
    failure = decode(orjson.dumps({**example, "data": data}))
    assert isinstance(failure, DecodeFailure)
    assert failure.reason == "invalid_message"
    assert "sender" in failure.detail
