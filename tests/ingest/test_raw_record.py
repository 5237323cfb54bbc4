"""The receiver's hot path builds the raw record straight to bytes: the same record as the model."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from mmbus.contracts.codec import decode, dumps, encode
from mmbus.contracts.webhook_events import WebhookReceived
from services.ingest.verification import parse_json, raw_record, raw_record_bytes, waba_of

json_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
).map(lambda v: {"entry": [{"id": v}]} if isinstance(v, str | int) else v)


@settings(max_examples=150, deadline=None)
@given(
    body=st.one_of(
        json_bodies.map(dumps),
        st.binary(max_size=64),
    ),
    source=st.sampled_from(["meta", "360dialog"]),
    key_index=st.none() | st.integers(0, 3),
    content_type=st.none() | st.text(max_size=20),
)
def test_bytes_equal_the_encoded_model(
    body: bytes, source: str, key_index: int | None, content_type: str | None
) -> None:
    now = datetime(2026, 11, 22, 1, 2, 3, 456789, tzinfo=UTC)
    common = {
        "received_at": now,
        "source": source,
        "path": f"/webhooks/{source}",
        "verdict": "valid",
        "key_index": key_index,
        "content_type": content_type,
    }
    parsed = parse_json(body)
    model = encode(raw_record(body, parsed=parsed, **common))  # type: ignore[arg-type]
    fast = raw_record_bytes(body, waba_id=waba_of(parsed), **common)  # type: ignore[arg-type]
    assert (fast.key, fast.value, fast.headers) == (model.key, model.value, model.headers)
    decoded = decode(fast.value, fast.headers)
    assert isinstance(decoded, WebhookReceived)
