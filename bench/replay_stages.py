"""The replay benchmark's summary: the targets' ratios and the CPU per stage."""

from __future__ import annotations

from dataclasses import dataclass

from services.projections.audit import AuditReport
from services.projections.shard import Stages


@dataclass
class Run:
    name: str
    report: AuditReport
    seconds: float
    cpu_s: float
    stages: Stages


def print_stages(
    runs: list[Run],
    raw_rate: float,
    raw_cpu: float,
    decode_s: float,
    fold_s: float,
    written: int,
    postgres: bool,
) -> None:
    """The ratios the targets are set on, then CPU µs per event per stage."""
    memory, sqlite, two = runs[0], runs[1], runs[2]
    one_rate = memory.report.records_read / memory.seconds
    print(
        f"SQLite / memory: {memory.seconds / sqlite.seconds:.2f}; "
        f"2 workers / 1 worker: {memory.seconds / two.seconds:.2f}"
    )
    one_fold, two_fold = memory.stages.wall["workers"], two.stages.wall["workers"]
    after = two.stages.seconds
    print(
        f"2 workers: {two_fold:.2f} s until every worker's share is finished "
        f"(1 worker, folding: {one_fold:.2f} s); worker 0's CPU after its fold: "
        f"exchange {after.get('exchange', 0.0):.2f} s, join {after.get('join', 0.0):.2f} s, "
        f"aggregates {after.get('aggregates', 0.0):.2f} s, "
        f"rows {after.get('rows+digest', 0.0):.2f} s; then merging every share "
        f"{after.get('merge', 0.0) + after.get('store', 0.0):.2f} s"
    )
    n = memory.report.records_read
    stages = [
        ("fetch (raw consumer)", raw_cpu * n),
        ("decode (trusted)", decode_s * n / written),
        ("fold", fold_s * n / written),
        ("exchange of entities (2 workers, worker 0)", two.stages.seconds.get("exchange", 0.0)),
        ("join of its share (2 workers, worker 0)", two.stages.seconds.get("join", 0.0)),
        ("merge of the shares (2 workers)", two.stages.seconds.get("merge", 0.0)),
        ("aggregates and click counts", memory.stages.seconds.get("aggregates", 0.0)),
        ("rows + digest", memory.stages.seconds.get("rows+digest", 0.0)),
        ("store load (SQLite)", sqlite.stages.seconds.get("store", 0.0)),
        ("stored digest check (SQLite)", sqlite.stages.seconds.get("verify", 0.0)),
    ]
    if postgres:
        pg = runs[3]
        stages.append(("store load (PostgreSQL COPY)", pg.stages.seconds.get("store", 0.0)))
        stages.append(("stored digest check (PostgreSQL)", pg.stages.seconds.get("verify", 0.0)))
    print("CPU per stage, µs/event:")
    for name, seconds in stages:
        print(f"  {name:<42} {seconds / n * 1e6:>7.1f}")
    print(
        f"  {'replay loop (fetch + decode + fold)':<42} "
        f"{(memory.stages.fetch + memory.stages.fold) / n * 1e6:>7.1f}"
    )
    print(f"one worker: {one_rate / raw_rate:.2f} of raw")
