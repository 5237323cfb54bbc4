"""A replay worker: fold some partitions, each from its start to its bound, into a partial state.

This is the replay's hot loop (fetch, decode, fold), kept lean: records are
decoded in trusted mode (the project's own log), offsets are recorded per
batch rather than per record, and the derived rows wait for the end.

While a replay folds, the garbage collector would walk the whole growing state
again and again (it is all long-lived containers), which cost about as much
as the fold itself. The state holds no reference cycles (it is freed by
reference counting when dropped), so no collection needs to walk it at all:
while a replay runs (:func:`state_out_of_gc`) the collector is off and each
batch's survivors are frozen (``gc.freeze``: moved aside in one step, never
walked). Collecting the young generations once per batch instead, as this
did before, walked every entity once (about 0.1 s on the benchmark's log, and
it found nothing), and the full collection that followed once the collector
was on again, with the state still held, walked it all again (another 0.1 s).
Should the client leave a reference cycle behind, it waits for the first
collection after the replay.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from mmbus.contracts.catalogue import LATEST
from mmbus.contracts.codec import DecodeFailure, decode
from services.common.logging import get_logger
from services.common.settings import CommonSettings
from services.projections.forward import Passed, Peers, Route
from services.projections.join import Partial, Segment, Tally
from services.projections.plan import ROUTED, ReplayPlan, Span, stream_of
from services.projections.projection import Projection, ProjectionSpec

log = get_logger("mmbus.replay")

Progress = Callable[[int, int], None]


@dataclass
class Stages:
    """Seconds of CPU spent per stage of the replay, for the benchmark's breakdown."""

    fetch: float = 0.0  # waiting for and parsing fetch responses (the Kafka client)
    fold: float = 0.0  # decode and fold
    passed: int = 0  # statuses passed to the worker holding their send side (forward.py)
    seconds: dict[str, float] = field(default_factory=dict)  # later stages, by name
    wall: dict[str, float] = field(default_factory=dict)  # elapsed, not CPU, by name

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


_nested = 0  # replays inside state_out_of_gc now (they may interleave on one event loop)
_was_enabled = False  # the collector as the first of them found it


@contextmanager
def state_out_of_gc() -> Iterator[None]:
    """No collection while a replay's state is built and read (see the module's docstring).

    Nested or interleaved uses are one: the first to enter notes whether the collector
    was on; the last to leave gives it back what was frozen (by anything in the process)
    and turns it on again if it was. Leave it once the state is dropped: a collection
    then walks what is left, not the state.
    """
    global _nested, _was_enabled
    if _nested == 0:
        _was_enabled = gc.isenabled()
    gc.disable()
    _nested += 1
    try:
        yield
    finally:
        _nested -= 1
        if _nested == 0:
            gc.unfreeze()
            if _was_enabled:
                gc.enable()


def _ce_type(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    for name, value in headers or ():
        if name == "ce_type":
            text: str = value.decode(errors="replace")
            return text
    return None


async def fold_spans(
    settings: CommonSettings,
    specs: tuple[ProjectionSpec, ...],
    spans: Sequence[Span],
    *,
    until_ms: int | None = None,
    progress: Progress | None = None,
    stages: Stages | None = None,
    peers: Peers | None = None,
) -> Partial:
    """Read every span from its start to its limit, or to the first record logged after
    ``until_ms``, folding each record; the partial state of what was read.

    With ``peers`` (the other workers of a replay on this host), the send side is
    read first and statuses whose message another worker sent are passed to it,
    while what the others pass here is folded here (:mod:`forward`)."""
    projection = Projection(specs, incremental=False)
    reached = {(s.topic, s.partition): s.start for s in spans}
    limits = {TopicPartition(s.topic, s.partition): s.limit for s in spans if s.size}
    folder = _Folder(projection, limits, reached, until_ms)
    reading = _Reading(folder, sum(s.size for s in spans), progress, peers)
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        client_id="mmbus-replay",
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **settings.kafka_client_options(),
    )
    await consumer.start()
    try:
        if peers is None:
            await reading.read(consumer, spans)
        else:
            statuses = [s for s in spans if stream_of(s.topic, settings.topic_prefix) is ROUTED]
            await reading.read(consumer, [s for s in spans if s not in statuses])
            route = await peers.learn(projection.wamids)
            await reading.read(consumer, statuses, route)
            peers.close()
            await peers.drain(reading.fold_passed)
    finally:
        await consumer.stop()
    if stages is not None:
        stages.fetch += reading.fetch_s
        stages.fold += reading.fold_s
        if peers is not None:
            stages.passed += peers.passed
    segment: Segment = tuple(
        (s.topic, s.partition, s.start, reached[(s.topic, s.partition)]) for s in spans
    )
    tally = Tally(folder.read, dict(projection.by_type), folder.undecodable)
    return Partial.of(projection, segment, tally)


class _Reading:
    """The fetch loop over some spans at a time, and its CPU per stage."""

    def __init__(
        self, folder: _Folder, total: int, progress: Progress | None, peers: Peers | None
    ) -> None:
        self.folder, self.total, self.progress, self.peers = folder, total, progress, peers
        self.fetch_s = self.fold_s = 0.0

    async def read(
        self, consumer: AIOKafkaConsumer, spans: Sequence[Span], route: Route | None = None
    ) -> None:
        folder, peers, clock = self.folder, self.peers, time.process_time
        tps = (TopicPartition(s.topic, s.partition) for s in spans)
        wanted = [tp for tp in tps if tp in folder.limits]
        if not wanted:
            return
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, folder.reached[(tp.topic, tp.partition)])
        while any(tp in folder.limits for tp in wanted):
            started = clock()
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            folding = clock()
            self.fetch_s += folding - started
            if not batch:
                await _past_the_end(consumer, wanted, folder.limits, folder.reached)
                continue
            finished = folder.fold(batch, route, peers)
            del batch  # the records go now, by reference counting
            for tp in finished:
                consumer.pause(tp)
            if peers is not None:
                peers.flush()
                folder.fold_passed(peers.take())
            gc.freeze()  # the batch's survivors, set aside unwalked (see the module)
            self.fold_s += clock() - folding
            if self.progress is not None:
                self.progress(folder.read, self.total)

    def fold_passed(self, batches: list[Passed]) -> None:
        started = time.process_time()
        self.folder.fold_passed(batches)
        gc.freeze()
        self.fold_s += time.process_time() - started


async def fold_shard(
    settings: CommonSettings,
    plan: ReplayPlan,
    shard: int,
    *,
    progress: Progress | None = None,
    stages: Stages | None = None,
    peers: Peers | None = None,
) -> Partial:
    """Worker ``shard``'s partitions of the plan, folded to the plan's bounds."""
    return await fold_spans(
        settings,
        plan.specs,
        plan.shard(shard),
        until_ms=plan.until_ms,
        progress=progress,
        stages=stages,
        peers=peers,
    )


class _Folder:
    """Decode and fold a fetched batch, each partition up to its bound."""

    def __init__(
        self,
        projection: Projection,
        limits: dict[TopicPartition, int],
        reached: dict[tuple[str, int], int],
        until_ms: int | None,
    ) -> None:
        self.projection = projection
        self.limits, self.reached, self.until_ms = limits, reached, until_ms
        self.read = 0
        self.undecodable: dict[str, int] = {}
        # Types the streams carry that no chosen projection folds are skipped undecoded.
        self.skip = not projection.types >= frozenset(LATEST)

    def fold(
        self,
        batch: Mapping[TopicPartition, Sequence[Any]],
        route: Route | None = None,
        peers: Peers | None = None,
    ) -> list[TopicPartition]:
        """Fold the batch (a record ``route`` names another worker for is passed to it
        through ``peers``); the partitions it finished."""
        finished = []
        apply, wanted, skip = self.projection.apply, self.projection.types, self.skip
        until_ms, limits, reached = self.until_ms, self.limits, self.reached
        for tp, records in batch.items():
            limit = limits.get(tp)
            if limit is None:
                continue
            nxt = reached[(tp.topic, tp.partition)]
            done = False
            read = 0
            for record in records:
                offset = record.offset
                if offset >= limit or (until_ms is not None and record.timestamp > until_ms):
                    done = True  # at the bound, or logged after the point in time
                    break
                nxt = offset + 1
                read += 1
                if skip:
                    ce_type = _ce_type(record.headers)
                    if ce_type is not None and ce_type not in wanted:
                        continue
                if route is not None and (target := route(record.key)) is not None:
                    peers.pass_on(target, record)  # type: ignore[union-attr]
                    continue
                event = decode(record.value, record.headers, trusted=True)
                if isinstance(event, DecodeFailure):
                    where = (record.topic, record.partition, record.offset)
                    _undecodable(self.undecodable, where, event)
                    continue
                apply(event)
            self.read += read
            reached[(tp.topic, tp.partition)] = nxt
            if done or nxt >= limit:
                del limits[tp]
                finished.append(tp)
        return finished

    def fold_passed(self, batches: Sequence[Passed]) -> None:
        """Fold records another worker read and passed here (counted as read there)."""
        apply = self.projection.apply
        for batch in batches:
            for i, (value, headers) in enumerate(zip(batch.values, batch.headers, strict=True)):
                event = decode(value, headers, trusted=True)
                if isinstance(event, DecodeFailure):
                    _undecodable(self.undecodable, batch.where(i), event)
                    continue
                apply(event)


async def _past_the_end(
    consumer: AIOKafkaConsumer,
    wanted: Sequence[TopicPartition],
    limits: dict[TopicPartition, int],
    reached: dict[tuple[str, int], int],
) -> None:
    """Nothing fetched: a partition whose position passed its limit without a record at
    the limit (the last offsets were transaction markers) is done."""
    for tp in [tp for tp in wanted if tp in limits]:
        position = await consumer.position(tp)
        if position >= limits[tp]:
            reached[(tp.topic, tp.partition)] = max(reached[(tp.topic, tp.partition)], limits[tp])
            del limits[tp]
            consumer.pause(tp)


def _undecodable(
    counts: dict[str, int], where: tuple[str, int, int], failure: DecodeFailure
) -> None:
    # Not ours to dead-letter (the producer owns the stream): counted, logged, and
    # listed in the audit report, never silently.
    key = f"undecodable:{failure.reason}"
    counts[key] = counts.get(key, 0) + 1
    topic, partition, offset = where
    log.warning(
        "record not readable; skipped",
        topic=topic,
        partition=partition,
        offset=offset,
        reason=failure.reason,
        detail=failure.detail,
    )
