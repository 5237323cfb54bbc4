"""The end of a sharded replay, done by every worker: entities exchanged by key.

When one process read every worker's partial state, joined them, derived the
aggregates and serialised every row, the end of a replay was serial and grew
with the number of workers (0.6 s of the 2.7 s of two workers on the
benchmark's log, more than a third of what the second worker saved). Here
each worker finishes a share of the entities instead, in the directory the
workers share:

1. **links**: each worker writes the (wamid, command key) pairs its messages
   link, each with whether it holds that message's send side
   (``links-<w>.json``), and reads every worker's. A status that named only
   a wamid is kept under ``w:<wamid>`` and merged at the join into the message
   linked to that wamid (:func:`join.join_messages`), so it must be finished
   by the worker that finishes that message: the one that holds its send side
   (:class:`~services.projections.owners.Router`).
2. **exchange**: each entity belongs to one worker, by its key; each worker
   writes the others' shares of its partial state
   (``share-<from>-to-<to>.jsonl``, the partial-state format) and reads the
   shares written for it.
3. **finish**: each worker joins its share, derives its messages' part of the
   aggregates (sums: :mod:`aggregates`), serialises its rows in (kind, key)
   order and counts what the audit reports (:class:`Share`).
4. **merge** (:mod:`services.projections.merge`): worker 0 adds up the derived
   rows and the counts, and merges every worker's sorted rows into one
   sequence (shares are disjoint: a merge, not a sort) for the digests and the
   store: the same bytes in the same order as one process makes, so the same
   digests.

Since statuses are passed to the worker of their send side during the fold
(:mod:`forward`), little is split between workers by then: on the benchmark's
log the shares exchanged hold clicks and a few orphan statuses, not half the
messages. Every step of a worker waits only for files; a worker that fails
stops the others (see :func:`arrived`).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from services.common.settings import CommonSettings
from services.projections.audit import findings
from services.projections.forward import Peers
from services.projections.join import Partial, Segment, Tally, join_all
from services.projections.owners import Router, links_of
from services.projections.partial import atomic_write, read_partial, write_partial
from services.projections.plan import ReplayPlan
from services.projections.projection import DERIVED_KINDS
from services.projections.rows import Row, serialised
from services.projections.shard import Progress, Stages, fold_shard

# Raises when a worker that the caller waits for has failed (or is gone).
Alive = Callable[[], None]
POLL_S = 0.002


def links_path(directory: Path, worker: int) -> Path:
    return directory / f"links-{worker}.json"


def share_path(directory: Path, source: int, target: int) -> Path:
    return directory / f"share-{source}-to-{target}.jsonl"


def rows_path(directory: Path, worker: int) -> Path:
    return directory / f"rows-{worker}.jsonl"


def _written(path: Path) -> bool:
    # One stat of a local file, a microsecond: not worth a thread per poll.
    return path.exists()


async def arrived(path: Path, alive: Alive) -> Path:
    """``path`` once another worker has written it (files appear whole: renamed)."""
    while not _written(path):
        alive()
        await asyncio.sleep(POLL_S)
    return path


def _ignored(seconds: float) -> None:
    pass


@dataclass
class Share:
    """What one worker finished: its rows in (kind, key) order, its part of the
    derived rows and of the audit's counts, and the log segments it read.

    The rows are made as they are read, once (the merge or the rows file takes
    them): held all at once, each document kept a page of memory of its own
    (orjson's output buffer, shrunk in place), and on the benchmark's log the
    page faults of 15,000 of them cost more than making them.
    """

    rows: Iterator[Row]
    derived: dict[str, dict[str, Any]]
    rows_by_kind: dict[str, int]
    states: dict[str, int]
    anomalies: dict[str, int]
    segments: dict[Segment, Tally]


def finish_share(
    parts: list[Partial],
    segments: dict[Segment, Tally],
    stages: Stages | None = None,
    *,
    columns: bool = True,
) -> Share:
    """Join the parts of one worker's share and finish it (steps 3 of the module)."""
    clock = time.process_time
    started = clock()
    projection = join_all(parts).projection()
    joined = clock()
    projection.settle()
    derived_at = clock()
    primary = [kind for kind in projection.kinds if kind not in DERIVED_KINDS]
    states, anomalies = findings(projection.entities.get("message", {}).values())
    share = Share(
        rows=serialised(
            projection.sorted_entities(primary),
            columns=columns,
            spent=(lambda s: stages.add("rows+digest", s)) if stages is not None else _ignored,
        ),
        derived={k: t for k, t in projection.entities.items() if k in DERIVED_KINDS},
        rows_by_kind={kind: len(projection.entities[kind]) for kind in primary},
        states=dict(states),
        anomalies=dict(anomalies),
        segments=segments,
    )
    if stages is not None:
        stages.add("join", joined - started)
        stages.add("aggregates", derived_at - joined)
        stages.add("rows+digest", clock() - derived_at)
    return share


async def share_of(
    settings: CommonSettings,
    plan: ReplayPlan,
    worker: int,
    directory: Path,
    alive: Alive,
    *,
    columns: bool = True,
    progress: Progress | None = None,
    stages: Stages | None = None,
) -> Share:
    """Fold the worker's partitions (statuses passed to the worker of their send side:
    forward.py), exchange entities with the others, finish its share."""
    peers = Peers(directory, worker, len(plan.shards), alive)
    partial = await fold_shard(
        settings, plan, worker, progress=progress, stages=stages, peers=peers
    )
    clock = time.process_time
    started = clock()
    workers = range(len(plan.shards))
    atomic_write(links_path(directory, worker), orjson.dumps(list(links_of(partial))))
    links = [
        orjson.loads((await arrived(links_path(directory, other), alive)).read_bytes())
        for other in workers
    ]
    shares = Router.of(links, len(workers)).split(partial)
    segments, specs = partial.segments, partial.specs
    del partial
    for other in workers:
        if other != worker:
            theirs = Partial(specs, shares[other], {})
            write_partial(
                share_path(directory, worker, other), theirs, plan_id=plan.id, shard=worker
            )
    parts = [Partial(specs, shares[worker], {})]
    del shares
    waited = 0.0
    for other in workers:
        if other != worker:
            path = share_path(directory, other, worker)
            mark = clock()
            await arrived(path, alive)
            waited += clock() - mark
            parts.append(read_partial(path, plan_id=plan.id)[1])
            gc.freeze()  # what was read, set aside unwalked (see shard.py)
    if stages is not None:
        stages.add("exchange", clock() - started - waited)
    return finish_share(parts, segments, stages, columns=columns)
