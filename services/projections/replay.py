"""Replay for audits: rebuild projections from the log into a fresh store and report.

A replay reads from the beginning of every stream up to a bound: the streams'
ends when it started, the offsets stored by another (live) projector, or the
last record logged at or before a point in time. The bounds are fixed first,
in a plan (:mod:`services.projections.plan`); the plan's partitions are folded
by one process or shared among workers whose partial states are joined
(:mod:`services.projections.join`). The audit report counts events per type and
messages per state, lists anomalies, and gives a digest per projection; the
same log up to the same offsets always gives the same digests, however many
workers folded it, which is how a replay is compared with the live projection.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

from services.common.settings import CommonSettings
from services.projections.audit import AuditReport, audit, finish, stamp
from services.projections.exchange import POLL_S, arrived, rows_path, share_of
from services.projections.join import Partial, join_all
from services.projections.merge import merge, write_share
from services.projections.partial import part_path, read_partial, write_partial, write_plan
from services.projections.plan import PlanError, ReplayPlan, make_plan, read_offsets
from services.projections.projection import ProjectionSpec
from services.projections.shard import Progress, Stages, fold_shard, state_out_of_gc
from services.projections.store import Offsets, Store, StoreError

# How long a worker that has handed back its rows may take to exit before it is stopped.
CHILD_EXIT_S = 30.0


def offsets_of(partial: Partial) -> Offsets:
    return read_offsets(partial.reached())


def check_complete(plan: ReplayPlan, partial: Partial) -> None:
    """Every partition of the plan read by exactly one worker from its start."""
    plan.check_read(partial.reached())


async def plan_replay(
    settings: CommonSettings,
    specs: tuple[ProjectionSpec, ...],
    *,
    workers: int = 1,
    until: datetime | None = None,
    offsets_of: tuple[str, str] | None = None,
) -> ReplayPlan:
    """Fix the bounds now (``offsets_of`` is (store URL, projector name): a live projector's)."""
    bound_offsets = None
    if offsets_of is not None:
        with Store(offsets_of[0]) as live:
            bound_offsets = live.offsets(offsets_of[1])
        if not bound_offsets:
            raise StoreError(
                f"projector {offsets_of[1]!r} has no offsets in {offsets_of[0]}; "
                "check --offsets-of and --projector-name"
            )
    until_ms = int(until.timestamp() * 1000) if until is not None else None
    return await make_plan(
        settings, specs, workers=workers, until_ms=until_ms, offsets=bound_offsets
    )


async def run_shard(
    settings: CommonSettings,
    plan: ReplayPlan,
    shard: int,
    directory: Path | None = None,
    *,
    progress: Progress | None = None,
    stages: Stages | None = None,
) -> Partial:
    """Fold one worker's share of the plan; with ``directory``, hand it back as a file."""
    with state_out_of_gc():
        partial = await fold_shard(settings, plan, shard, progress=progress, stages=stages)
        if directory is not None:
            write_partial(part_path(directory, shard), partial, plan_id=plan.id, shard=shard)
    return partial


def read_parts(directory: Path, plan: ReplayPlan, shards: range) -> list[Partial]:
    """The workers' partial states, as files in ``directory``, checked against the plan."""
    parts = []
    with state_out_of_gc():  # large, long-lived states: see shard.py
        for shard in shards:
            path = part_path(directory, shard)
            if not path.exists():
                raise PlanError(f"worker {shard}'s partial state {path} is missing")
            _, partial = read_partial(path, plan_id=plan.id)
            parts.append(partial)
            gc.freeze()
    return parts


def complete(
    plan: ReplayPlan,
    partials: list[Partial],
    store: Store | None,
    *,
    name: str,
    stages: Stages | None = None,
) -> AuditReport:
    """Join the workers' partial states and finish: the audit report."""
    with state_out_of_gc():
        started = time.process_time()
        joined = join_all(partials)
        check_complete(plan, joined)
        projection = joined.projection()
        if stages is not None:
            stages.add("join", time.process_time() - started)
        offsets = offsets_of(joined)
        digests = finish(projection, store, name=name, offsets=offsets, stages=stages)
        report = audit(projection, joined.tally(), digests)
    return stamp(report, offsets, plan.until_ms, len(plan.shards))


def _worker(
    settings: CommonSettings,
    plan: ReplayPlan,
    shard: int,
    directory: Path,
    parent: int,
    columns: bool,
) -> None:
    """A forked worker: its own event loop and Kafka client; files back (see exchange.py)."""

    def alive() -> None:
        if os.getppid() != parent:
            raise PlanError("the replay's first worker is gone; this worker stops")

    async def work() -> None:
        with state_out_of_gc():
            share = await share_of(settings, plan, shard, directory, alive, columns=columns)
            write_share(
                rows_path(directory, shard), share, plan_id=plan.id, worker=shard, columns=columns
            )

    try:
        import uvloop  # as the services run: about half the cost of the loop's networking
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        asyncio.run(work())
    else:
        uvloop.run(work())


async def replay(
    settings: CommonSettings,
    specs: tuple[ProjectionSpec, ...],
    *,
    store_url: str | None,
    until: datetime | None = None,
    offsets_of: tuple[str, str] | None = None,
    progress: Progress | None = None,
    name: str = "mmbus-replay",
    workers: int = 1,
    directory: Path | None = None,
    stages: Stages | None = None,
) -> AuditReport:
    """Rebuild ``specs`` into a fresh store (or memory only) and audit the result.

    With ``workers`` > 1 the plan's partitions are shared among that many
    processes on this host: this one folds the first share, forked workers the
    others, each handing its partial state back as a file in ``directory`` (a
    temporary one by default), exactly as workers on other hosts would.
    """
    store = Store(store_url).open() if store_url else None
    try:
        if store is not None and not store.is_empty():
            raise StoreError(
                f"{store_url} already holds projections; a replay needs a fresh store "
                "(a new file or database)"
            )
        plan = await plan_replay(
            settings, specs, workers=workers, until=until, offsets_of=offsets_of
        )
        # The state is dropped inside: see state_out_of_gc.
        with state_out_of_gc():
            if workers == 1:
                report = await _one(settings, plan, store, name, progress, stages)
            else:
                with tempfile.TemporaryDirectory(prefix="mmbus-replay-") as tmp:
                    where = directory or Path(tmp)
                    write_plan(where, plan)
                    report = await _fan_out(settings, plan, where, store, name, progress, stages)
        if until is not None:
            report.until = until.isoformat()  # as asked, not as rounded to milliseconds
        return report
    finally:
        if store is not None:
            store.close()


async def _one(
    settings: CommonSettings,
    plan: ReplayPlan,
    store: Store | None,
    name: str,
    progress: Progress | None,
    stages: Stages | None,
) -> AuditReport:
    started = time.perf_counter()
    partial = await run_shard(settings, plan, 0, progress=progress, stages=stages)
    if stages is not None:
        stages.wall["workers"] = time.perf_counter() - started
    return complete(plan, [partial], store, name=name, stages=stages)


async def _fan_out(
    settings: CommonSettings,
    plan: ReplayPlan,
    directory: Path,
    store: Store | None,
    name: str,
    progress: Progress | None,
    stages: Stages | None,
) -> AuditReport:
    """This process is worker 0, forked processes the others; they exchange entities and
    each finishes its share (exchange.py), which this one merges (merge.py).

    The exchange's files go in a directory of their own, named after the plan (a
    file left by another replay in ``directory`` is never taken for this one's),
    and are removed once merged: they hold the whole state.
    """
    directory = directory / f"exchange-{plan.id}"
    directory.mkdir(parents=True, exist_ok=True)
    fork = multiprocessing.get_context("fork")
    children = [
        fork.Process(
            target=_worker,
            args=(settings, plan, shard, directory, os.getpid(), store is not None),
            daemon=True,
        )
        for shard in range(1, len(plan.shards))
    ]

    def alive() -> None:
        for child in children:
            if child.exitcode not in (None, 0):
                raise PlanError(f"a replay worker failed (exit code {child.exitcode})")

    def wait(path: Path) -> Path:
        # Blocking: the merge is synchronous, and nothing else runs in this process now.
        while not path.exists():
            alive()
            if all(child.exitcode == 0 for child in children) and not path.exists():
                raise PlanError(f"{path} is missing although every worker has finished")
            time.sleep(POLL_S)
        return path

    started = time.perf_counter()
    for child in children:
        child.start()
    try:
        own = await share_of(
            settings,
            plan,
            0,
            directory,
            alive,
            columns=store is not None,
            progress=progress,
            stages=stages,
        )
        others = [
            await arrived(rows_path(directory, child), alive)
            for child in range(1, len(plan.shards))
        ]
        if stages is not None:
            stages.wall["workers"] = time.perf_counter() - started
        report = merge(plan, own, others, store, name=name, stages=stages, wait=wait)
        for child in children:  # done: its rows are written; one that lingers is stopped
            await asyncio.to_thread(child.join, CHILD_EXIT_S)
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
        shutil.rmtree(directory, ignore_errors=True)
    return report
