"""A derived event too large for its topic is replaced by a dead letter that names it."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from mmbus.contracts.codec import decode, encode
from mmbus.contracts.sizes import record_bound
from mmbus.contracts.webhook_events import DeadLetterRecorded, MessageReceived
from services.ingest.normalize import normalize
from services.ingest.normalizer import Normalizer
from services.ingest.settings import IngestSettings
from tests.ingest.test_corpus import raw_of

LIMIT = 1024


def _inbound(text: str) -> dict[str, object]:
    message = {"from": "447911123456", "id": "wamid.T", "timestamp": "1772454600", "type": "text"}
    value = {
        "metadata": {"phone_number_id": "106540352242922"},
        "messages": [message | {"text": {"body": text}}],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


def _record(value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t.webhooks.raw", 2, 41, 0, 0, b"1", value, None, len(value), 1, [])


def test_events_within_the_bound_pass_and_a_larger_one_becomes_a_dead_letter() -> None:
    normalizer = Normalizer(IngestSettings(ingest_max_body_bytes=LIMIT, topic_prefix="t."))
    assert normalizer.max_record_bytes == record_bound(LIMIT)
    small, large = (normalize(raw_of(_inbound(t)))[0] for t in ("hi", "x" * record_bound(LIMIT)))
    raw = _record(b"{}")
    assert normalizer._fitting(small, raw) == (small, encode(small))
    letter, record = normalizer._fitting(large, raw)
    assert isinstance(large, MessageReceived)
    assert isinstance(letter, DeadLetterRecorded)
    assert (letter.data.reason, letter.data.partition, letter.data.offset) == (
        "event_too_large",
        2,
        41,
    )
    assert large.id in letter.data.detail
    assert letter.data.value_b64 is None, "the raw record at those coordinates keeps it"
    assert len(record.value) < normalizer.max_record_bytes
    assert decode(record.value, record.headers) == letter
    assert normalizer.topic_for(letter) == "t.dead-letters"
