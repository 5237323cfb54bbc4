"""The fetch loop of a replay worker: decode and fold records, each partition up to its bound.

Kept lean, as the replay's hot loop: records are decoded in trusted mode (the
project's own log), offsets are recorded per batch rather than per record. A
worker reads units of the plan (a partition, or the co-keyed partitions of the
send side) as it is given them: all its share at once, or one claimed after
another from the workers' shared directory (:func:`claimed`), two at a time so
the next unit's records are fetched while the last one's are folded.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from mmbus.contracts.catalogue import LATEST
from mmbus.contracts.codec import DecodeFailure, decode
from services.common.logging import get_logger
from services.projections.forward import Divert, Passed, Peers
from services.projections.plan import Span
from services.projections.projection import Projection

log = get_logger("mmbus.replay")

Progress = Callable[[int, int], None]
# Units given at a time: the one being folded and the next, whose records are fetched
# meanwhile. One at a time, each unit's first records waited for a fetch's round trip,
# which under load (two workers and the broker on two cores) cost more than the
# unit taken ahead can unbalance the end.
AHEAD = 2


def ce_type_of(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    for name, value in headers or ():
        if name == "ce_type":
            text: str = value.decode(errors="replace")
            return text
    return None


class Folder:
    """Decode and fold a fetched batch, each partition up to its bound."""

    def __init__(self, projection: Projection, until_ms: int | None) -> None:
        self.projection, self.until_ms = projection, until_ms
        # Per partition given (Reading.read): the bound, and the next offset to read.
        self.limits: dict[TopicPartition, int] = {}
        self.reached: dict[tuple[str, int], int] = {}
        self.read = 0
        self.undecodable: dict[str, int] = {}
        # Types the streams carry that no chosen projection folds are skipped undecoded.
        self.skip = not projection.types >= frozenset(LATEST)

    def fold(
        self, batch: Mapping[TopicPartition, Sequence[Any]], divert: Divert | None = None
    ) -> list[TopicPartition]:
        """Fold the batch (but the records ``divert`` passes to another worker); the
        partitions it finished."""
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
                    ce_type = ce_type_of(record.headers)
                    if ce_type is not None and ce_type not in wanted:
                        continue
                if divert is not None and divert(record):
                    continue
                event = decode(record.value, record.headers, trusted=True)
                if isinstance(event, DecodeFailure):
                    where = (record.topic, record.partition, record.offset)
                    undecodable(self.undecodable, where, event)
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
                    undecodable(self.undecodable, batch.where(i), event)
                    continue
                apply(event)


class Reading:
    """The fetch loop over the units given to a worker, and its CPU per stage.

    Every partition a worker might read is assigned once, at its start offset, and
    paused; a unit given to the worker is resumed. Assigning partitions as they
    were given instead made the client drop what it had fetched for the others
    each time (a new assignment starts every partition afresh)."""

    def __init__(
        self,
        folder: Folder,
        consumer: AIOKafkaConsumer,
        progress: Progress | None,
        peers: Peers | None,
    ) -> None:
        self.folder, self.consumer = folder, consumer
        self.progress, self.peers = progress, peers
        self.spans: list[Span] = []  # every span read, in the order given
        self.total = 0
        self.fetch_s = self.fold_s = 0.0

    def assign(self, spans: Sequence[Span]) -> None:
        """Every partition any unit may hold, at its start, paused."""
        tps = {TopicPartition(s.topic, s.partition): s.start for s in spans if s.size}
        self.consumer.assign(list(tps))
        for tp, start in tps.items():
            self.consumer.seek(tp, start)
        self.consumer.pause(*tps)

    async def read(
        self, units: Iterator[Sequence[Span]], divert: Divert | None = None, ahead: int = AHEAD
    ) -> None:
        """Fold the units ``units`` gives, ``ahead`` of them being fetched at a time."""
        folder, peers, consumer, clock = self.folder, self.peers, self.consumer, time.process_time
        inflight: list[set[TopicPartition]] = []

        def take() -> bool:
            """The next unit with anything to read, resumed; False: none left."""
            for spans in units:
                self.spans += spans
                unit = set()
                for s in spans:
                    folder.reached[(s.topic, s.partition)] = s.start
                    if s.size:
                        tp = TopicPartition(s.topic, s.partition)
                        folder.limits[tp] = s.limit
                        unit.add(tp)
                        self.total += s.size
                if unit:
                    consumer.resume(*unit)
                    inflight.append(unit)
                    return True
            return False

        while len(inflight) < ahead and take():
            pass
        while inflight:
            started = clock()
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            folding = clock()
            self.fetch_s += folding - started
            if not batch:
                active = [tp for unit in inflight for tp in unit]
                finished = await past_the_end(consumer, active, folder.limits, folder.reached)
            else:
                finished = folder.fold(batch, divert)
                del batch  # the records go now, by reference counting
            if finished:
                consumer.pause(*finished)
                inflight[:] = [u for u in (unit - set(finished) for unit in inflight) if u]
                while len(inflight) < ahead and take():
                    pass
            if peers is not None:
                peers.flush()
                folder.fold_passed(peers.take())
            gc.freeze()  # the batch's survivors, set aside unwalked (see shard.py)
            self.fold_s += clock() - folding
            if self.progress is not None:
                self.progress(folder.read, self.total)

    def fold_passed(self, batches: list[Passed]) -> None:
        started = time.process_time()
        self.folder.fold_passed(batches)
        gc.freeze()
        self.fold_s += time.process_time() - started


def claimed(
    units: Sequence[Sequence[Span]], ids: Sequence[int], peers: Peers
) -> Iterator[Sequence[Span]]:
    """The units this worker claims first, in the order given (ids: the units' numbers,
    the same on every worker)."""
    for unit_id, unit in zip(ids, units, strict=True):
        if peers.claim(unit_id):
            yield unit


async def past_the_end(
    consumer: AIOKafkaConsumer,
    wanted: Sequence[TopicPartition],
    limits: dict[TopicPartition, int],
    reached: dict[tuple[str, int], int],
) -> list[TopicPartition]:
    """Nothing fetched: a partition whose position passed its limit without a record at
    the limit (the last offsets were transaction markers) is done; those partitions."""
    finished = []
    for tp in [tp for tp in wanted if tp in limits]:
        position = await consumer.position(tp)
        if position >= limits[tp]:
            reached[(tp.topic, tp.partition)] = max(reached[(tp.topic, tp.partition)], limits[tp])
            del limits[tp]
            finished.append(tp)
    return finished


def undecodable(
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
