"""The end of a sharded replay, done by every worker: entities exchanged by key.

When one process read every worker's partial state, joined them, derived the
aggregates and serialised every row, the end of a replay was serial and grew
with the number of workers (0.6 s of the 2.7 s of two workers on the
benchmark's log, more than a third of what the second worker saved). Here
each worker finishes a share of the entities instead, in the directory the
workers share:

1. **links**: each worker writes the (wamid, command key) pairs its messages
   link (``links-<w>.json``) and reads every worker's. A status that named only
   a wamid is kept under ``w:<wamid>`` and merged at the join into the message
   linked to that wamid (:func:`join.join_messages`), so it must be finished
   by the worker that finishes that message: the one that linked it
   (:class:`Router`).
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

Every step of a worker waits only for files; a worker that fails stops the
others (see :func:`arrived`).
"""

from __future__ import annotations

import asyncio
import gc
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from services.common.settings import CommonSettings
from services.projections.audit import findings
from services.projections.join import (
    Partial,
    Segment,
    Tally,
    join_all,
    linked_wamid,
    orphan_wamid,
)
from services.projections.message import MessageState
from services.projections.partial import atomic_write, read_partial, write_partial
from services.projections.plan import ReplayPlan
from services.projections.projection import DERIVED_KINDS
from services.projections.rows import Row, dump_doc, row_of
from services.projections.shard import Progress, Stages, fold_shard

# Raises when a worker that the caller waits for has failed (or is gone).
Alive = Callable[[], None]
POLL_S = 0.002
# (wamid, message key, rank): see Router.
Link = tuple[str, str, int]


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


def bucket_of(key: str, workers: int) -> int:
    """The worker that finishes the entities keyed ``key``: the same on every host."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % workers


def links_of(partial: Partial) -> list[tuple[str, str, bool]]:
    """(wamid, key, whether the send side is here) of every message that links a command
    to a wamid: a status whose callback data names the command links them too."""
    messages: dict[str, MessageState] = partial.entities.get("message", {})
    return [
        (wamid, key, m.template_name is not None)  # set by the command and every send event
        for key, m in messages.items()
        if (wamid := linked_wamid(m))
    ]


def ranked(links: Iterable[Sequence[Any]], worker: int, workers: int) -> list[Link]:
    """One worker's :func:`links_of` as the :class:`Router` takes them."""
    return [(wamid, key, worker if sent else workers + worker) for wamid, key, sent in links]


class Router:
    """Which worker finishes each entity.

    Message keys and wamids that any worker's messages link are grouped (a
    message may have been linked to two wamids, in two partial states); a
    group goes to the worker of its lowest-ranked link, and with it every
    ``w:<wamid>`` entry of its wamids: whatever the join could merge is on one
    worker. A link's rank is the worker that holds it, first among the workers
    that hold the message's send side (:func:`ranked`). The send side (the
    command and its send events, co-keyed: :data:`plan.CO_KEYED`) is usually
    whole on one worker, so it stays there and only its statuses travel: on the
    benchmark's log, half the messages were written, read and joined again when
    a group went by the hash of its key. Other entities, and unlinked messages,
    go by their own key. Every worker reads every worker's links, so every
    worker routes alike; the ranks decide only what travels, never the result.
    """

    def __init__(self, links: Iterable[Link], workers: int) -> None:
        self.workers = workers
        links = list(links)
        owner: dict[str, int] = {}  # key: its lowest-ranked link
        for _, key, rank in links:
            if owner.get(key, 2 * workers) > rank:
                owner[key] = rank
        # The usual case: no wamid linked to two keys. A key's group is then itself (with
        # any other wamids of its own), and a wamid's the one key it names.
        of_wamid: dict[str, str] = {}
        for wamid, key, _ in links:
            if of_wamid.setdefault(wamid, key) != key:
                break
        else:
            self._by_key: dict[str, int] = {k: rank % workers for k, rank in owner.items()}
            self._by_wamid: dict[str, int] = {w: self._by_key[k] for w, k in of_wamid.items()}
            return
        up: dict[tuple[bool, str], tuple[bool, str]] = {}
        lowest: dict[tuple[bool, str], int] = {}  # per group's root: its lowest rank

        def root(node: tuple[bool, str]) -> tuple[bool, str]:
            top = node
            while (parent := up.get(top, top)) != top:
                top = parent
            while node != top:  # shorten the path for the next look-up
                up[node], node = top, up[node]
            return top

        for wamid, key, rank in links:
            a, b = root((True, key)), root((False, wamid))
            lowest[a] = min(lowest.get(a, rank), rank)
            if a != b:
                up[b] = a
                theirs = lowest.pop(b, None)
                if theirs is not None and theirs < lowest[a]:
                    lowest[a] = theirs
        self._by_key = {}
        self._by_wamid = {}
        for wamid, key, _ in links:
            self._by_key[key] = lowest[root((True, key))] % workers
            self._by_wamid[wamid] = lowest[root((False, wamid))] % workers

    def message(self, key: str, state: MessageState) -> int:
        worker = self._by_key.get(key)
        if worker is None and (wamid := orphan_wamid(key, state)):
            worker = self._by_wamid.get(wamid)
        return bucket_of(key, self.workers) if worker is None else worker

    def split(self, partial: Partial) -> list[dict[str, dict[str, Any]]]:
        """The partial state's entities, per worker that finishes them."""
        shares: list[dict[str, dict[str, Any]]] = [
            {kind: {} for kind in partial.entities} for _ in range(self.workers)
        ]
        n = self.workers
        for kind, table in partial.entities.items():
            if kind == "message":
                for key, state in table.items():
                    shares[self.message(key, state)][kind][key] = state
            else:
                for key, state in table.items():
                    shares[bucket_of(key, n)][kind][key] = state
        return shares


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


def _rows(
    entities: Iterator[tuple[str, str, Any]], columns: bool, stages: Stages | None
) -> Iterator[Row]:
    clock = time.process_time
    while True:
        mark = clock()  # per batch: a CPU clock read is a system call, dearer than a row
        if columns:
            batch = [
                row_of(k, key, state, dump_doc(state)) for k, key, state in islice(entities, 256)
            ]
        else:  # no store: the digest needs the documents only
            batch = [Row(k, key, dump_doc(state)) for k, key, state in islice(entities, 256)]
        if stages is not None:
            stages.add("rows+digest", clock() - mark)
        if not batch:
            return
        yield from batch


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
        rows=_rows(projection.sorted_entities(primary), columns, stages),
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
    """Fold the worker's partitions, exchange entities with the others, finish its share."""
    partial = await fold_shard(settings, plan, worker, progress=progress, stages=stages)
    clock = time.process_time
    started = clock()
    workers = range(len(plan.shards))
    atomic_write(links_path(directory, worker), orjson.dumps(links_of(partial)))
    links: list[Link] = []
    for other in workers:
        theirs = orjson.loads((await arrived(links_path(directory, other), alive)).read_bytes())
        links += ranked(theirs, other, len(workers))
    shares = Router(links, len(workers)).split(partial)
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
