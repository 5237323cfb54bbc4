"""The projector: reads the event streams from its stored offsets and folds them into the store.

It is not a consumer-group member: like Karapace's schema reader it assigns
itself every partition of the streams it needs, seeks to the offsets stored
with its rows (or the beginning) and never commits to Kafka. Each batch is
folded in memory, then the changed rows and the new offsets go to the store
in one transaction. It is ready once it has reached the end offsets it saw
at start. (A replay, which stops at bounds, reads with
:mod:`services.projections.shard` instead.)

Why aiokafka directly and not FastStream (which :mod:`mmbus.consumer` builds
on): FastStream subscribers are consumer-group members that commit to Kafka;
the projector's position lives in its own store, in the same transaction as
its rows, and it seeks there itself (``assign`` + ``seek``, no group), which
is what makes a crash neither lose nor double-count.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

from mmbus.contracts.codec import DecodeFailure, decode
from mmbus.contracts.topics import topic_name
from services.common.logging import get_logger
from services.common.settings import CommonSettings
from services.projections.projection import Projection, Row, streams_for
from services.projections.spans import batch_span
from services.projections.store import Offsets, Store

log = get_logger("mmbus.projector")

Progress = Callable[[int, int], None]


@dataclass
class ProjectorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.records = PromCounter(
            "mmbus_projector_records",
            "Records read, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "mmbus_projector_lag_records",
            "Records between the stored offsets and the end of the streams.",
            registry=self.registry,
        )
        self.flush_seconds = Histogram(
            "mmbus_projector_flush_seconds",
            "Time of one store transaction (rows plus offsets).",
            registry=self.registry,
        )


def _ce_type(record: ConsumerRecord[bytes, bytes]) -> str | None:
    for name, value in record.headers or ():
        if name == "ce_type":
            text: str = value.decode(errors="replace")
            return text
    return None


class ProjectorError(Exception):
    """The projector cannot run; the message says what to fix."""


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise ProjectorError(f"topic {topic} does not exist; run `mmbus topics create`")
    return set(parts)


class Projector:
    def __init__(
        self,
        settings: CommonSettings,
        projection: Projection,
        store: Store | None,
        *,
        name: str,
        batch_records: int = 5000,
        flush_interval_ms: int = 200,
        progress: Progress | None = None,
        metrics: ProjectorMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.projection = projection
        self.store = store
        self.name = name
        self.batch_records = batch_records
        self.flush_interval_ms = flush_interval_ms
        self.progress = progress
        self.metrics = metrics or ProjectorMetrics()
        self.topics = [
            topic_name(stream, settings.topic_prefix) for stream in streams_for(projection.specs)
        ]
        self.offsets: Offsets = dict(store.offsets(name)) if store is not None else {}
        self.anomalies: Counter[str] = Counter()
        self.ready = asyncio.Event()
        # Notified after every batch: lets callers wait for a condition on the progress.
        self.progressed = asyncio.Condition()
        self.read = 0
        self.fatal: BaseException | None = None
        self._end: dict[tuple[str, int], int] = {}
        self._writing: asyncio.Task[None] | None = None
        # What the store holds (the offsets of the last write that landed).
        self.stored: Offsets = dict(self.offsets)
        self._applied = self.metrics.records.labels("applied")
        self._skipped = self.metrics.records.labels("skipped")
        # Counted per record, reported per batch (a metric update takes a lock).
        self._batch_applied = self._batch_skipped = 0

    def load_state(self) -> int:
        """Load the stored rows into memory; the offsets were read with them."""
        if self.store is None:
            return 0
        n = 0
        for kind, key, doc in self.store.rows(self.projection.kinds):
            self.projection.load(kind, key, doc)
            n += 1
        return n

    def lag(self) -> int:
        return sum(max(0, end - self.offsets.get(tp, 0)) for tp, end in self._end.items())

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._run(stop)
        except BaseException as exc:
            self.fatal = exc
            raise

    async def _run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"mmbus-projector-{self.name}",
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **self.settings.kafka_client_options(),
        )
        await consumer.start()
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in self.topics
                for p in sorted(await _partitions(consumer, topic))
            ]
            consumer.assign(partitions)
            beginnings = await consumer.beginning_offsets(partitions)
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                key = (tp.topic, tp.partition)
                start = max(self.offsets.get(key, 0), beginnings[tp])
                self.offsets[key] = start
                consumer.seek(tp, start)
                self._end[key] = ends[tp]
            self._check_ready()
            log.info(
                "projector reading",
                projector=self.name,
                partitions=len(partitions),
                lag=self.lag(),
            )
            while not stop.is_set():
                batch = await consumer.getmany(
                    timeout_ms=self.flush_interval_ms, max_records=self.batch_records
                )
                with batch_span(self.name, batch):  # no-op when empty or tracing is off
                    for tp, records in batch.items():
                        key = (tp.topic, tp.partition)
                        for record in records:
                            self._fold(record)
                            # Per record: if a fold raised, the flush in `finally` must
                            # not store offsets past what the state holds.
                            self.offsets[key] = record.offset + 1
                            self.read += 1
                    self._count_batch()
                    if batch:
                        # One transaction per batch read: fresh rows, exact resumption.
                        await self._flush()
                if batch and self.progress is not None:
                    self.progress(self.read, self.lag())
                self.metrics.lag.set(self.lag())
                self._check_ready()
                async with self.progressed:
                    self.progressed.notify_all()
                if not batch:
                    await self._refresh_ends(consumer, partitions)
        finally:
            try:
                await self._flush()
                await self._drain()
            finally:
                await consumer.stop()

    async def _refresh_ends(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> None:
        # Idle: a cheap moment to learn the streams' new ends for the lag gauge.
        try:
            ends = await consumer.end_offsets(partitions)
        except Exception as exc:  # the broker may be restarting; the lag waits
            log.info("end offsets unavailable", error=type(exc).__name__)
            return
        for tp, end in ends.items():
            self._end[(tp.topic, tp.partition)] = end

    def _check_ready(self) -> None:
        # Ready once the store (not only memory) has reached the ends seen at start.
        held = self.stored if self.store is not None else self.offsets
        if not self.ready.is_set() and all(held.get(tp, 0) >= end for tp, end in self._end.items()):
            self.ready.set()
            log.info("projector caught up", projector=self.name, read=self.read)

    def _fold(self, record: ConsumerRecord[bytes, bytes]) -> None:
        ce_type = _ce_type(record)
        if ce_type is not None and ce_type not in self.projection.types:
            self._batch_skipped += 1
            return
        event = decode(record.value, record.headers, trusted=True)
        if isinstance(event, DecodeFailure):
            # Not ours to dead-letter (the producer owns the stream): counted, logged,
            # and listed in the audit report, never silently.
            self.anomalies[f"undecodable:{event.reason}"] += 1
            self.metrics.records.labels("undecodable").inc()
            log.warning(
                "record not readable; skipped",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                reason=event.reason,
                detail=event.detail,
            )
            return
        self.projection.apply(event)
        self._batch_applied += 1

    def _count_batch(self) -> None:
        if self._batch_applied:
            self._applied.inc(self._batch_applied)
        if self._batch_skipped:
            self._skipped.inc(self._batch_skipped)
        self._batch_applied = self._batch_skipped = 0

    async def _flush(self) -> None:
        """Hand the batch's rows and offsets to the store, then go on folding.

        The rows are serialised now (a snapshot), and written in a worker thread
        while the next batch is read and folded; sqlite3 and psycopg release the
        GIL while they work. Writes stay one at a time and in order.
        """
        if self.store is None:
            self.projection.forget_dirty()
            return
        upserts, deletes = self.projection.take_dirty()
        if not upserts and not deletes and self.offsets == self.stored:
            return
        await self._drain()
        self._writing = asyncio.create_task(self._write(upserts, deletes, dict(self.offsets)))

    async def _drain(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _write(
        self, upserts: list[Row], deletes: list[tuple[str, str]], offsets: Offsets
    ) -> None:
        assert self.store is not None
        started = time.perf_counter()
        await asyncio.to_thread(self.store.write, self.name, upserts, deletes, offsets)
        self.metrics.flush_seconds.observe(time.perf_counter() - started)
        self.stored = offsets
        log.debug("projection stored", stored=sum(offsets.values()), rows=len(upserts))
