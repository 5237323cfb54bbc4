"""Encode/decode: lossless round trips, typed failures, upcasting on read."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmbus.contracts.catalogue import BY_TYPE_VERSION, LATEST
from mmbus.contracts.codec import DecodeFailure, decode, encode, header_attributes
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import SendAccepted, SendIndeterminate
from tests.contracts.examples import load_examples

EXAMPLES = load_examples()
# Old versions are upcast on decode, so only the newest of each type round-trips as itself.
CURRENT = sorted(
    n
    for n, e in EXAMPLES.items()
    if LATEST[e["type"]] is BY_TYPE_VERSION[(e["type"], e["version"])]
)

VALID_NUMBERS = [
    "447911123456",
    "4915112345678",
    "16505550123",
    "5511987654321",
    "919876543210",
    "33612345678",
]
LANGUAGES = ["en", "en_US", "pt_BR", "es_MX", "de", "fil", "zh_HK"]

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
aware_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
graph_ids = st.integers(min_value=1, max_value=10**17).map(str)
components = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["header", "body", "button"])},
        optional={
            "parameters": st.lists(
                st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=3
            )
        },
    ),
    max_size=3,
)


@st.composite
def send_templates(draw: st.DrawFn) -> SendTemplate:
    cid = draw(st.uuids().map(str))
    optional = st.none
    data = {
        "command_id": cid,
        "waba_id": draw(graph_ids),
        "phone_number_id": draw(graph_ids),
        "to": draw(st.sampled_from(VALID_NUMBERS)),
        "template": {
            "name": draw(st.from_regex(r"[a-z0-9_]{1,30}", fullmatch=True)),
            "language": {"code": draw(st.sampled_from(LANGUAGES))},
            "components": draw(components),
            "category": draw(st.sampled_from([None, "MARKETING", "UTILITY", "AUTHENTICATION"])),
        },
        "provider": draw(st.sampled_from(["meta", "360dialog"])),
        "route": draw(st.sampled_from(["auto", "marketing_messages", "cloud_api"])),
        "product_policy": draw(st.sampled_from(["CLOUD_API_FALLBACK", "STRICT"])),
        "message_activity_sharing": draw(optional() | st.booleans()),
        "bid_multiplier": draw(optional() | st.floats(min_value=0.01, max_value=10.0)),
        "ttl_seconds": draw(optional() | st.integers(min_value=43200, max_value=2592000)),
        "not_after": draw(optional() | aware_times),
        "campaign_id": draw(optional() | texts),
        "labels": draw(st.dictionaries(texts, texts, max_size=3)),
        "callback_data": draw(optional() | texts),
    }
    return SendTemplate.model_validate(
        {
            "id": cid,
            "time": draw(aware_times),
            "source": draw(texts),
            "subject": cid,
            "correlation_id": cid,
            "data": data,
        }
    )


def _assert_round_trip(message: Message) -> None:
    record = encode(message)
    decoded = decode(record.value, record.headers)
    assert not isinstance(decoded, DecodeFailure), decoded
    assert decoded == message
    assert type(decoded) is type(message)
    attrs = header_attributes(record.headers)
    assert attrs["ce_id"] == message.id
    assert attrs["ce_type"] == message.type
    assert attrs["ce_source"] == message.source
    assert attrs["ce_schemaversion"] == str(message.version)
    assert datetime.fromisoformat(attrs["ce_time"]) == message.time
    assert attrs["content-type"] == "application/json"
    assert record.key == message.record_key()


@settings(max_examples=200, deadline=None)
@given(send_templates())
def test_any_send_command_round_trips(command: SendTemplate) -> None:
    _assert_round_trip(command)
    assert encode(command).key == command.data.phone_number_id.encode()


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(CURRENT),
    message_id=st.uuids().map(str),
    time=aware_times,
    source=texts,
    subject=texts,
    correlation=st.none() | texts,
    causation=st.none() | texts,
)
def test_every_message_type_round_trips(
    name: str,
    message_id: str,
    time: datetime,
    source: str,
    subject: str,
    correlation: str | None,
    causation: str | None,
) -> None:
    example = EXAMPLES[name]
    model = BY_TYPE_VERSION[(example["type"], example["version"])]
    message = model.model_validate(
        {
            **example,
            "id": message_id,
            "time": time,
            "source": source,
            "subject": subject,
            "correlation_id": correlation,
            "causation_id": causation,
        }
    )
    _assert_round_trip(message)


def test_unknown_meta_fields_survive_a_round_trip() -> None:
    example = EXAMPLES["marketing.link_clicked.v1"]
    data = {
        **example["data"],
        "user_agent_family": "Chrome Mobile",
        "new_meta_field": {"x": [1, 2]},
    }
    message = BY_TYPE_VERSION[("marketing.link_clicked", 1)].model_validate(
        {**example, "data": data}
    )
    decoded = decode(encode(message).value)
    assert isinstance(decoded, Message)
    dumped = decoded.model_dump(mode="json")["data"]
    assert dumped["user_agent_family"] == "Chrome Mobile"
    assert dumped["new_meta_field"] == {"x": [1, 2]}


def _raw(example: str, **changes: Any) -> bytes:
    return orjson.dumps({**EXAMPLES[example], **changes})


def _without_data_field(example: str, field: str) -> bytes:
    envelope = dict(EXAMPLES[example])
    envelope["data"] = {k: v for k, v in envelope["data"].items() if k != field}
    return orjson.dumps(envelope)


@pytest.mark.parametrize(
    ("value", "headers", "reason", "detail"),
    [
        (b'{"type": "send.template", "version": 1, "data": {', None, "invalid_json", "not JSON"),
        (None, None, "invalid_json", "no value"),
        (b"[1, 2, 3]", None, "not_an_envelope", "JSON list"),
        (b'{"version": 1}', None, "not_an_envelope", "'type'"),
        (
            b'{"type": "send.template", "version": "1"}',
            None,
            "not_an_envelope",
            "integer 'version'",
        ),
        (_raw("send.template.v1", type="send.telegram"), None, "unknown_type", "send.telegram"),
        (_raw("send.template.v1", version=7), None, "newer_version", "upgrade mmbus"),
        (_raw("send.template.v1", version=0), None, "unknown_version", "never defined"),
        (_without_data_field("send.template.v1", "to"), None, "invalid_message", "data.to"),
        (_without_data_field("message.status.v1", "wamid"), None, "invalid_message", "data.wamid"),
        (_raw("send.template.v1", time="2026-03-02T09:15:04"), None, "invalid_message", "time"),
        (_raw("send.template.v1"), [("ce_type", b"send.accepted")], "header_mismatch", "ce_type"),
    ],
)
def test_bad_records_are_typed_failures_with_reasons(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, reason: str, detail: str
) -> None:
    result = decode(value, headers)
    assert isinstance(result, DecodeFailure)
    assert result.reason == reason
    assert detail in result.detail + " ".join(result.errors)


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_a_version_that_is_not_an_integer_fails_on_the_fast_path_too(version: Any) -> None:
    envelope = {**EXAMPLES["send.template.v1"], "version": version}
    headers = [("ce_type", b"send.template"), ("ce_schemaversion", b"1")]
    for result in (decode(orjson.dumps(envelope)), decode(orjson.dumps(envelope), headers)):
        assert isinstance(result, DecodeFailure)
        assert result.reason == "not_an_envelope"


def test_invalid_phone_number_is_reported_by_field() -> None:
    envelope = dict(EXAMPLES["send.template.v1"])
    envelope["data"] = {**envelope["data"], "to": "12345"}
    result = decode(orjson.dumps(envelope))
    assert isinstance(result, DecodeFailure)
    assert result.reason == "invalid_message"
    assert any(e.startswith("data.to:") for e in result.errors)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300)
    | st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.sampled_from(["type", "version", "id", "time", "data"]) | texts,
            st.none()
            | st.integers()
            | texts
            | st.sampled_from(["send.template", "message.status"]),
            max_size=6,
        ),
    )
)
def test_decode_never_raises(value: bytes) -> None:
    result = decode(value, [("ce_id", value[:10])])
    assert isinstance(result, DecodeFailure | Message)


def test_stored_v1_send_accepted_decodes_as_v2() -> None:
    stored = orjson.dumps(EXAMPLES["send.accepted.v1"])  # what an old sender wrote
    decoded = decode(stored)
    assert isinstance(decoded, SendAccepted)
    assert decoded.version == 2
    assert decoded.data.message_status is None, "v1 never recorded it: unknown, not invented"
    assert decoded.data.wamid == EXAMPLES["send.accepted.v1"]["data"]["wamid"]
    # The upcast happens on read; encoding the decoded value writes v2, the stored bytes stay v1.
    assert orjson.loads(encode(decoded).value)["version"] == 2
    assert orjson.loads(stored)["version"] == 1


def test_stored_v1_send_indeterminate_decodes_as_v2_with_its_cause() -> None:
    stored = orjson.dumps(EXAMPLES["send.indeterminate.v1"])
    decoded = decode(stored)
    assert isinstance(decoded, SendIndeterminate)
    assert decoded.version == 2
    assert decoded.data.cause == EXAMPLES["send.indeterminate.v1"]["data"]["cause"]


def test_time_is_written_in_utc() -> None:
    berlin = datetime(2026, 3, 2, 11, 15, tzinfo=timezone(timedelta(hours=1)))
    command = SendTemplate.model_validate({**EXAMPLES["send.template.v1"], "time": berlin})
    assert orjson.loads(encode(command).value)["time"] == "2026-03-02T10:15:00Z"


def test_command_id_is_canonical_uuid() -> None:
    upper = str(uuid.uuid4()).upper()
    envelope = dict(EXAMPLES["send.template.v1"])
    envelope["data"] = {**envelope["data"], "command_id": upper}
    command = SendTemplate.model_validate(envelope)
    assert command.data.command_id == upper.lower()
