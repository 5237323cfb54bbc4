"""Sizes agree end to end, by table: the bound, the catalogue, the start-up check, refusals."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import (
    InvalidTimestampError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from mmbus.contracts.codec import KafkaRecord, dumps
from mmbus.contracts.sizes import (
    DEFAULT_MAX_BODY_BYTES,
    WEBHOOK_MAX_MESSAGE_BYTES,
    max_body_for,
    record_bound,
)
from mmbus.contracts.topics import WEBHOOK_STREAMS, Stream, catalogue
from services.ingest.capacity import capacity_problem
from services.ingest.refusals import keep_sizes, refusal_of
from services.ingest.storage import Storage
from services.ingest.verification import raw_record_bytes, waba_of

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("body", "record"),
    [(DEFAULT_MAX_BODY_BYTES, 8_454_144), (1024, 67_584), (64 * 1024, 196_608)],
)
def test_record_bound_and_its_inverse(body: int, record: int) -> None:
    assert record_bound(body) == record
    assert max_body_for(record) == body
    assert max_body_for(record - 1) == body - 1
    assert max_body_for(1000) == 0


def _record_size(body: bytes) -> int:
    record = raw_record_bytes(
        body,
        waba_id=waba_of({"entry": [{"id": "102290129340398"}]}),
        received_at=datetime(2026, 3, 2, tzinfo=UTC),
        source="360dialog",
        path="/webhooks/360dialog",
        verdict="not_required",
        key_index=None,
        content_type="application/json; charset=utf-8" + "x" * 10_000,
    )
    return len(record.key) + len(record.value) + sum(len(k) + len(v) for k, v in record.headers)


@pytest.mark.parametrize(
    "body",
    [
        dumps({"text": '"' * (3 * MiB // 2)}),  # 3 MiB of \" in the body: 6 MiB as a string
        dumps({"text": "\\" * 100_000}),
        b"\n" * 100_000 + b"{}",
        "\u00e9".encode("utf-16"),  # not UTF-8: stored as base64
        b"\xff" * 30_000,
    ],
    ids=["quotes-3MiB", "backslashes", "newlines", "utf16", "not-utf8"],
)
def test_the_worst_bodies_fit_their_bound(body: bytes) -> None:
    assert _record_size(body) <= record_bound(len(body))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from('"\\\n\t\r\u2028ab\u00e9\U0001f44d'), max_size=400))
def test_any_json_text_fits_its_bound(text: str) -> None:
    body = dumps({"entry": [{"id": "1", "changes": [{"value": {"text": text}}]}]})
    assert _record_size(body) <= record_bound(len(body))


def test_the_catalogue_sizes_every_stream_a_webhook_reaches() -> None:
    specs = {s.stream: s for s in catalogue("p.", partitions=1)}
    assert record_bound(DEFAULT_MAX_BODY_BYTES) == WEBHOOK_MAX_MESSAGE_BYTES
    for stream, spec in specs.items():
        expected = str(WEBHOOK_MAX_MESSAGE_BYTES) if stream in WEBHOOK_STREAMS else None
        assert spec.config.get("max.message.bytes") == expected, stream
    assert specs[Stream.RAW_WEBHOOKS].config["compression.type"] == "gzip"
    assert {Stream.SEND_COMMANDS, Stream.SEND_EVENTS}.isdisjoint(WEBHOOK_STREAMS)


@pytest.mark.parametrize(
    ("limit", "topic_max", "named"),
    [
        (DEFAULT_MAX_BODY_BYTES, WEBHOOK_MAX_MESSAGE_BYTES, None),
        (DEFAULT_MAX_BODY_BYTES, 1_048_588, ("4194304", "1048588", "8454144", "491526")),
        (64 * MiB, WEBHOOK_MAX_MESSAGE_BYTES, ("67108864", "8454144", "134283264", "4194304")),
    ],
)
def test_capacity_problem_names_both_numbers(
    limit: int, topic_max: int, named: tuple[str, ...] | None
) -> None:
    problem = capacity_problem(limit, "mmbus.webhooks.raw", topic_max)
    if named is None:
        assert problem is None
    else:
        assert problem is not None
        assert "mmbus.webhooks.raw" in problem
        for number in named:
            assert number in problem


@pytest.mark.parametrize(
    ("body", "limit", "expected"),
    [
        (1000, 8 * MiB, [1000, 0]),
        (5 * MiB, 8 * MiB, [5 * MiB, 64 * 1024, 0]),
        (7 * MiB, 8 * MiB, [(8 * MiB - 16 * 1024) * 3 // 4, 64 * 1024, 0]),
        (10, 0, [10, 0]),
    ],
)
def test_keep_sizes(body: int, limit: int, expected: list[int]) -> None:
    assert keep_sizes(body, limit) == expected


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (MessageSizeTooLargeError(), 413),
        (RecordListTooLargeError(), 413),
        (InvalidTimestampError(), 422),
        (KafkaTimeoutError(), None),
        (NotEnoughReplicasError(), None),
        (TimeoutError(), None),
    ],
)
def test_only_errors_about_the_record_are_permanent(error: Exception, status: int | None) -> None:
    refusal = refusal_of(error, "t.webhooks.raw", 123)
    assert (refusal.status if refusal else None) == status
    if refusal:
        assert "t.webhooks.raw" in refusal.detail
        assert "123 bytes" in refusal.detail


# ----------------------------------------------------- storage, with a fake producer
class _Batch:
    def append(self, **_: Any) -> object:
        return object()

    def close(self) -> None:
        pass


class FakeProducer:
    """send() raises ``on_send`` or returns a future failing with ``on_ack``; a batch of its
    own then fails with ``alone`` (None: accepted)."""

    def __init__(
        self,
        on_send: Exception | None = None,
        on_ack: Exception | None = None,
        alone: Exception | None = None,
    ) -> None:
        self.on_send, self.on_ack, self.alone = on_send, on_ack, alone
        self.batches: list[tuple[str, int]] = []
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, **_: Any) -> asyncio.Future[None]:
        if self.on_send:
            raise self.on_send
        return self._future(self.on_ack)

    def create_batch(self) -> _Batch:
        return _Batch()

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    async def send_batch(
        self, batch: _Batch, topic: str, *, partition: int
    ) -> asyncio.Future[None]:
        self.batches.append((topic, partition))
        return self._future(self.alone)

    @staticmethod
    def _future(error: Exception | None) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if error:
            future.set_exception(error)
        else:
            future.set_result(None)
        return future


TOO_LARGE = MessageSizeTooLargeError()
GAP = OutOfOrderSequenceNumber()


@pytest.mark.parametrize(
    ("producer", "renewed", "outcome", "alone_on"),
    [
        (FakeProducer(), None, None, None),
        (FakeProducer(on_send=MessageSizeTooLargeError()), None, 413, None),  # producer's check
        (FakeProducer(on_ack=KafkaTimeoutError()), FakeProducer(), KafkaTimeoutError, None),
        # Refused with its batch; alone it fits: on the same producer when there is no other,
        (FakeProducer(on_ack=TOO_LARGE), None, None, "same"),
        # else on a new one (the refusal left a gap in the old one's sequence numbers).
        (FakeProducer(on_ack=TOO_LARGE), FakeProducer(), None, "new"),
        (FakeProducer(on_ack=TOO_LARGE), FakeProducer(alone=TOO_LARGE), 413, "new"),
        (
            FakeProducer(on_ack=TOO_LARGE),
            FakeProducer(alone=KafkaTimeoutError()),
            KafkaTimeoutError,
            "new",
        ),
        # A producer stopped by a sequence gap is replaced, and the record sent on the new one.
        (FakeProducer(on_ack=GAP), FakeProducer(), None, "new"),
        (FakeProducer(on_send=GAP), FakeProducer(), None, "new"),
        (FakeProducer(on_send=GAP), None, OutOfOrderSequenceNumber, None),
    ],
)
def test_storage_outcomes(
    producer: FakeProducer, renewed: FakeProducer | None, outcome: Any, alone_on: str | None
) -> None:
    latency = Histogram("t", "t", registry=CollectorRegistry())

    async def renew() -> FakeProducer:
        assert renewed is not None
        return renewed

    storage = Storage(
        producer,
        5.0,
        latency,
        renew if renewed else None,
    )
    record = KafkaRecord(key=b"102290129340398", value=b"{}", headers=[])

    async def store() -> Any:
        try:
            refused = await storage.store("t.webhooks.raw", record)
        except Exception as exc:
            return type(exc)
        finally:
            await asyncio.gather(*storage._retiring)
        return refused.status if refused else None

    assert asyncio.run(store()) == outcome
    lone = {"same": producer, "new": renewed, None: None}[alone_on]
    for each in (producer, renewed):
        if each is not None:
            assert bool(each.batches) == (each is lone), alone_on
    if alone_on == "new":
        assert producer.stopped, "the replaced producer is stopped"


def test_a_dead_letter_keeps_a_prefix_and_says_what_was_cut() -> None:
    from services.ingest.refusals import dead_letter
    from services.ingest.verification import raw_record

    body = b'{"entry":[]}' + b" " * 100
    record = raw_record(
        body,
        parsed={"entry": []},
        received_at=datetime(2026, 3, 2, tzinfo=UTC),
        source="meta",
        path="/webhooks/meta",
        verdict="valid",
        key_index=0,
        content_type=None,
    )
    letter = dead_letter(record, body, reason="record_too_large", detail="x", keep=12)
    assert base64.b64decode(letter.data.value_b64 or "") == body[:12]
    assert f"body_bytes={len(body)}" in letter.data.errors
    assert "kept_bytes=12" in letter.data.errors
    whole = dead_letter(record, body, reason="record_too_large", detail="x")
    assert whole.id == letter.id, "Meta's retries of the same webhook: the same dead letter"
    assert whole.data.errors == ()
