"""A replay's plan: which records of which partitions it folds, and how workers share them.

The plan fixes the bounds before any worker starts (the streams' ends at
planning time, or a live projector's stored offsets, and an optional point in
time), so workers that start at different moments, on different hosts, still
fold exactly the same log. Partitions are shared out whole, largest first to
the least loaded worker: a partition's records are folded in log order by one
worker, which the log-ordered folds (WABA, template status) rely on. The same
partition of the streams keyed alike goes to one worker (:data:`CO_KEYED`):
fewer messages are split between partial states, which the join then reads
and merges.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from mmbus.contracts.topics import Stream, topic_name
from services.common.settings import CommonSettings
from services.projections.projection import ProjectionSpec, choose, streams_for

PLAN_FORMAT = "mmbus-replay-plan/1"


class PlanError(Exception):
    """The plan cannot be made or used; the message says what to fix."""


@dataclass(frozen=True)
class Span:
    """Offsets ``start`` (included) to ``limit`` (excluded) of one partition."""

    topic: str
    partition: int
    start: int
    limit: int

    @property
    def size(self) -> int:
        return max(0, self.limit - self.start)


@dataclass(frozen=True)
class ReplayPlan:
    id: str
    projections: tuple[str, ...]
    until_ms: int | None
    spans: tuple[Span, ...]
    shards: tuple[tuple[int, ...], ...]  # per worker, indexes into spans

    @property
    def specs(self) -> tuple[ProjectionSpec, ...]:
        return choose(self.projections)

    def shard(self, index: int) -> tuple[Span, ...]:
        if not 0 <= index < len(self.shards):
            raise PlanError(f"shard {index} is not in the plan (0 to {len(self.shards) - 1})")
        return tuple(self.spans[i] for i in self.shards[index])

    def check_read(self, reached: Mapping[tuple[str, int], tuple[int, int]]) -> None:
        """Every partition of the plan read by exactly one worker from its start
        (``reached``: per partition, the offsets read, start and next)."""
        for span in self.spans:
            got = reached.get((span.topic, span.partition))
            if got is None or got[0] != span.start:
                raise PlanError(
                    f"{span.topic}[{span.partition}] is missing from the partial states"
                )

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "id": self.id,
            "projections": list(self.projections),
            "until_ms": self.until_ms,
            "spans": [[s.topic, s.partition, s.start, s.limit] for s in self.spans],
            "shards": [list(shard) for shard in self.shards],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ReplayPlan:
        if raw.get("format") != PLAN_FORMAT:
            raise PlanError(f"not a replay plan (format {raw.get('format')!r})")
        return cls(
            id=str(raw["id"]),
            projections=tuple(raw["projections"]),
            until_ms=raw["until_ms"],
            spans=tuple(Span(str(t), int(p), int(a), int(b)) for t, p, a, b in raw["spans"]),
            shards=tuple(tuple(int(i) for i in shard) for shard in raw["shards"]),
        )


def read_offsets(reached: Mapping[tuple[str, int], tuple[int, int]]) -> dict[tuple[str, int], int]:
    """The next offset per partition read: what the store records with the rows."""
    return {tp: nxt for tp, (_, nxt) in sorted(reached.items())}


def split(sizes: Sequence[float], workers: int) -> tuple[tuple[int, ...], ...]:
    """Indexes of ``sizes`` shared among ``workers``: largest first to the least loaded.

    Deterministic (ties go to the lower index), so every host computes the same
    split; a partition is never cut. The lightest share comes first: on one
    host, worker 0 is the process that then joins the others' states.
    """
    if workers < 1:
        raise PlanError("a replay needs at least one worker")
    loads = [0.0] * workers
    shards: list[list[int]] = [[] for _ in range(workers)]
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        target = min(range(workers), key=lambda w: (loads[w], w))
        shards[target].append(index)
        loads[target] += sizes[index]
    order = sorted(range(workers), key=lambda w: (loads[w], w))
    return tuple(tuple(sorted(shards[w])) for w in order)


# What reading a record costs, against a send event or a status (fetch, decode and fold:
# about 23 µs on the benchmark's log, measured per stream in one process): a command
# about 20, a click about 17. Only the balance between workers depends on these.
COST_PER_RECORD = {Stream.SEND_COMMANDS.value: 0.9, Stream.MARKETING_CLICKS.value: 0.75}


def weight(topic: str, prefix: str, records: int) -> float:
    return records * COST_PER_RECORD.get(topic.removeprefix(prefix), 1.0)


# Streams keyed alike (by phone number id), so partition p of each holds the same
# senders' records: a message's command and its send events. Folded by one worker,
# the message's send side is whole in one partial state, and only its statuses (keyed
# by wamid) can be elsewhere: on the benchmark's log, 45% of the messages are in both
# of two workers' states, against 71% with the partitions shared out one by one, and
# each such message is written, read and merged again at the join. Only the cost
# depends on this: the join gives the same state however the partitions are shared.
CO_KEYED = (Stream.SEND_COMMANDS.value, Stream.SEND_EVENTS.value)


# Statuses, keyed by wamid: workers on one host claim them after the send side, and
# pass each to the worker that holds its message's send side (forward.py).
ROUTED = Stream.MESSAGE_STATUS


def stream_of(topic: str, prefix: str) -> Stream | None:
    try:
        return Stream(topic.removeprefix(prefix))
    except ValueError:
        return None


def units_of(spans: Sequence[Span], prefix: str) -> list[list[int]]:
    """The spans as units of work, indexes into ``spans``: partition p of the co-keyed
    streams together, every other span alone."""
    units: dict[tuple[str, int] | int, list[int]] = {}
    for i, span in enumerate(spans):
        together = span.topic.removeprefix(prefix) in CO_KEYED
        units.setdefault(("co-keyed", span.partition) if together else i, []).append(i)
    return list(units.values())


def share(spans: Sequence[Span], prefix: str, workers: int) -> tuple[tuple[int, ...], ...]:
    """:func:`split` of the spans, partition p of the co-keyed streams kept together."""
    members = units_of(spans, prefix)
    sizes = [sum(weight(spans[i].topic, prefix, spans[i].size) for i in unit) for unit in members]
    return tuple(
        tuple(sorted(i for u in shard for i in members[u])) for shard in split(sizes, workers)
    )


def claim_order(spans: Sequence[Span], prefix: str) -> tuple[list[list[int]], list[list[int]]]:
    """The units as workers on one host claim them: the send side and everything but the
    statuses, then the statuses, each heaviest first (the last units claimed are the
    lightest, so the workers end close together). The same on every worker."""

    def heaviest_first(units: list[list[int]]) -> list[list[int]]:
        cost = [sum(weight(spans[i].topic, prefix, spans[i].size) for i in u) for u in units]
        return [units[u] for u in sorted(range(len(units)), key=lambda u: (-cost[u], u))]

    units = units_of(spans, prefix)
    statuses = [u for u in units if stream_of(spans[u[0]].topic, prefix) is ROUTED]
    first = [u for u in units if stream_of(spans[u[0]].topic, prefix) is not ROUTED]
    return heaviest_first(first), heaviest_first(statuses)


async def make_plan(
    settings: CommonSettings,
    specs: tuple[ProjectionSpec, ...],
    *,
    workers: int = 1,
    until_ms: int | None = None,
    offsets: Mapping[tuple[str, int], int] | None = None,
) -> ReplayPlan:
    """Bounds from the cluster now: every partition of the streams, from its first offset
    to its end (or to ``offsets``, a live projector's), shared among ``workers``."""
    topics = [topic_name(stream, settings.topic_prefix) for stream in streams_for(specs)]
    consumer = AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, **settings.kafka_client_options()
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions: list[TopicPartition] = []
        for topic in topics:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                raise PlanError(f"topic {topic} does not exist; run `mmbus topics create`")
            partitions += [TopicPartition(topic, p) for p in sorted(parts)]
        firsts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    spans = []
    for tp in partitions:
        limit = ends[tp]
        if offsets is not None:
            limit = min(limit, offsets.get((tp.topic, tp.partition), 0))
        start = min(firsts[tp], limit)
        spans.append(Span(tp.topic, tp.partition, start, limit))
    return ReplayPlan(
        id=str(uuid.uuid4()),
        projections=tuple(s.name for s in specs),
        until_ms=until_ms,
        spans=tuple(spans),
        shards=share(spans, settings.topic_prefix, workers),
    )
