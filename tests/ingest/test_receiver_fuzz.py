"""Fuzzing the webhook endpoint: never a 500, and nothing signed is dropped."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import Stream
from mmbus.contracts.webhook_events import WebhookReceived
from services.common.settings import CommonSettings
from tests.ingest.test_receiver import NEW, ingest_settings, receiver
from tests.sender.support import read_stream

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)
bodies = st.binary(max_size=300) | json_like.map(lambda v: json.dumps(v).encode())
signatures = st.sampled_from(["valid", "none", "wrong", "garbage"])


def _exact_bytes(message: Message) -> bytes:
    assert isinstance(message, WebhookReceived)
    data = message.data
    return base64.b64decode(data.body) if data.body_encoding == "base64" else data.body.encode()


def header(body: bytes, kind: str) -> dict[str, str]:
    if kind == "none":
        return {}
    if kind == "garbage":
        return {"X-Hub-Signature-256": "sha256"}
    secret = NEW if kind == "valid" else "not-the-secret"
    return {
        "X-Hub-Signature-256": "sha256="
        + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    }


def test_fuzzed_requests(kafka_settings: CommonSettings) -> None:
    sent: list[tuple[bytes, str, int]] = []

    async def run_all(cases: list[tuple[bytes, str]]) -> None:
        async with receiver(ingest_settings(kafka_settings)) as client:
            for body, kind in cases:
                response = await client.post(
                    "/webhooks/meta", content=body, headers=header(body, kind)
                )
                sent.append((body, kind, response.status_code))

    cases: list[tuple[bytes, str]] = []

    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(body=bodies, kind=signatures)
    def collect(body: bytes, kind: str) -> None:
        cases.append((body, kind))

    collect()
    asyncio.run(run_all(cases))

    assert all(status != 500 for _, _, status in sent)
    for body, kind, status in sent:
        if kind != "valid":
            assert status == 401, (body, kind, status)
        else:
            assert status in (200, 400), (body, status)
    stored = [b for b, k, s in sent if k == "valid" and s == 200]
    dead = [b for b, k, s in sent if k == "valid" and s == 400]
    raw = asyncio.run(
        read_stream(kafka_settings, Stream.RAW_WEBHOOKS, until=lambda m: len(m) >= len(stored))
    )
    assert sorted(_exact_bytes(m) for m in raw) == sorted(stored), "stored exactly as received"
    if dead:
        letters = asyncio.run(
            read_stream(kafka_settings, Stream.DEAD_LETTERS, until=lambda m: len(m) >= len(dead))
        )
        assert len(letters) == len(dead), (
            "every signed body that is not JSON is kept as a dead letter"
        )
