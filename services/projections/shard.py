"""A replay worker: fold some partitions, each from its start to its bound, into a partial state.

The fetch loop itself is in :mod:`reading`; here, what a worker reads: its
share of the plan (a worker of a replay split across hosts), or the plan's
units as it claims them, statuses passed to the worker of their send side (the
workers of a replay on one host, :mod:`forward`).

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

import asyncio
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from services.common.settings import CommonSettings
from services.projections.forward import Peers
from services.projections.join import Partial, Segment, Tally
from services.projections.plan import ReplayPlan, Span, claim_order
from services.projections.projection import Projection, ProjectionSpec
from services.projections.reading import Folder, Reading, claimed
from services.projections.reading import Progress as Progress

# How long the broker may hold a fetch with nothing new (aiokafka's default: 500 ms). A
# partition read to its bound has nothing new, and a fetch for it held at the broker
# delays the fetch of a partition resumed meanwhile (the next unit); with data to
# return the broker answers at once either way.
FETCH_WAIT_MS = 20


@dataclass
class Stages:
    """Seconds of CPU spent per stage of the replay, for the benchmark's breakdown."""

    fetch: float = 0.0  # waiting for and parsing fetch responses (the Kafka client)
    fold: float = 0.0  # decode and fold
    passed: int = 0  # statuses passed to the worker holding their send side (forward.py)
    received: int = 0  # statuses passed here by the other workers
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


async def fold_spans(
    settings: CommonSettings,
    specs: tuple[ProjectionSpec, ...],
    spans: Sequence[Span],
    *,
    until_ms: int | None = None,
    progress: Progress | None = None,
    stages: Stages | None = None,
) -> Partial:
    """Read every span from its start to its limit, or to the first record logged after
    ``until_ms``, folding each record; the partial state of what was read."""
    return await _fold(
        settings, specs, until_ms, progress, stages, None, spans, iter([spans]), None
    )


async def fold_shard(
    settings: CommonSettings,
    plan: ReplayPlan,
    shard: int,
    *,
    progress: Progress | None = None,
    stages: Stages | None = None,
    peers: Peers | None = None,
) -> Partial:
    """Worker ``shard``'s partitions of the plan, folded to the plan's bounds.

    With ``peers`` (the other workers of a replay on this host) the plan's units
    are claimed as the workers go, not shared out beforehand: the send side
    first, then the statuses, each status whose message another worker sent
    being passed to it, and what the others pass here folded here
    (:mod:`forward`). Whichever worker is ahead takes the next unit, so the
    workers end together however fast each runs; the plan's shares are what
    workers on other hosts (``--shard``) read.
    """
    if peers is None:
        spans = plan.shard(shard)
        return await _fold(
            settings, plan.specs, plan.until_ms, progress, stages, None, spans, iter([spans]), None
        )
    sends, statuses = claim_order(plan.spans, settings.topic_prefix)
    first = claimed([[plan.spans[i] for i in unit] for unit in sends], range(len(sends)), peers)
    then = claimed(
        [[plan.spans[i] for i in unit] for unit in statuses],
        range(len(sends), len(sends) + len(statuses)),
        peers,
    )
    return await _fold(
        settings, plan.specs, plan.until_ms, progress, stages, peers, plan.spans, first, then
    )


async def _fold(
    settings: CommonSettings,
    specs: tuple[ProjectionSpec, ...],
    until_ms: int | None,
    progress: Progress | None,
    stages: Stages | None,
    peers: Peers | None,
    spans: Sequence[Span],
    first: Iterator[Sequence[Span]],
    then: Iterator[Sequence[Span]] | None,
) -> Partial:
    """Fold the units ``first`` gives, then (with peers) those ``then`` gives, of
    ``spans``, every partition the worker may read."""
    projection = Projection(specs, incremental=False)
    folder = Folder(projection, until_ms)
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        client_id="mmbus-replay",
        fetch_max_wait_ms=FETCH_WAIT_MS,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **settings.kafka_client_options(),
    )
    reading = Reading(folder, consumer, progress, peers)
    await consumer.start()
    try:
        reading.assign(spans)
        if peers is None or then is None:
            await reading.read(first, ahead=1)  # one unit: everything at once
        else:
            await reading.read(first)
            divert = await peers.learn(projection.wamids)
            await reading.read(then, divert)
            peers.close()
            await peers.drain(reading.fold_passed)
    finally:
        # aiokafka 0.14 without a group: stopping a consumer before its first step
        # after start (a worker that claimed nothing) raises CancelledError.
        await asyncio.sleep(0)
        await consumer.stop()
    if stages is not None:
        stages.fetch += reading.fetch_s
        stages.fold += reading.fold_s
        if peers is not None:
            stages.passed += peers.passed
            stages.received += peers.received
    reached = folder.reached
    segment: Segment = tuple(
        (s.topic, s.partition, s.start, reached[(s.topic, s.partition)]) for s in reading.spans
    )
    tally = Tally(folder.read, dict(projection.by_type), folder.undecodable)
    return Partial.of(projection, segment, tally)
