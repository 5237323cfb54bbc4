"""The last step of a sharded replay: every worker's finished share, merged by worker 0.

A worker other than 0 hands its :class:`~services.projections.exchange.Share`
back as ``rows-<w>.jsonl``: a header line (the plan's id, the worker, the log
segments it read, its counts, rows per kind among them, and its part of the
derived rows), then one line per row in (kind, key) order,
``[kind, key, ref, grp, ts]<TAB>doc``, the doc being the canonical JSON the
digest is taken over (never parsed again here). The rows come in parts of
:data:`PART_ROWS`, the first in ``rows-<w>.jsonl`` after the header, the next
in ``rows-<w>.1.jsonl`` and so on, each file renamed into place whole: worker 0
merges a part while the worker writes the next, rather than waiting for all of
them (on the benchmark's log, writing the rows and merging them took about
0.1 s each, one after the other).

The rows of all shares are merged as they are read, so worker 0 holds its own
rows and one part of each worker's at a time, whatever the log's size.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from itertools import count, islice
from pathlib import Path
from typing import IO, Any

import orjson

from services.projections.aggregates import Aggregate, add_counts
from services.projections.audit import AuditReport, report_of, stamp, write_rows
from services.projections.clicks import ClickCount
from services.projections.exchange import Share
from services.projections.join import Partial
from services.projections.partial import atomic_write, header_of, segments_json, segments_of
from services.projections.plan import PlanError, ReplayPlan, read_offsets
from services.projections.rows import Row, dump_doc, load_table, row_of
from services.projections.shard import Stages
from services.projections.store import Store

ROWS_FORMAT = "mmbus-replay-rows/2"  # /1: every row in one file
PART_ROWS = 2000

# Returns the path once the file is there; raises if its writer has failed.
Wait = Callable[[Path], Path]


def part_path(first: Path, part: int) -> Path:
    """Part ``part`` of the rows whose first part (with the header) is ``first``."""
    return first if part == 0 else first.with_name(f"{first.stem}.{part}{first.suffix}")


def write_share(path: Path, share: Share, *, plan_id: str, worker: int) -> None:
    header = {
        "format": ROWS_FORMAT,
        "plan": plan_id,
        "shard": worker,
        "segments": segments_json(share.segments),
        "rows_by_kind": share.rows_by_kind,
        "states": share.states,
        "anomalies": share.anomalies,
        "derived": share.derived,
    }
    rows = iter(share.rows)
    first = orjson.dumps(header) + b"\n"
    for part in count():
        lines = [
            orjson.dumps((r.kind, r.key, r.ref, r.grp, r.ts)) + b"\t" + r.doc + b"\n"
            for r in islice(rows, PART_ROWS)
        ]
        if part and not lines:
            return
        atomic_write(part_path(path, part), b"".join([first, *lines] if part == 0 else lines))
        if len(lines) < PART_ROWS:
            return


def written(path: Path) -> Path:
    """A :data:`Wait` for files already written: a missing one is an error."""
    if not path.exists():
        raise PlanError(f"{path} is missing: a worker's rows are incomplete")
    return path


Ordered = tuple[str, str, Row]  # (kind, key, row): compared as tuples, keys unique


def _rows_in(first: Path, src: IO[bytes], rows: int, wait: Wait) -> Iterator[Ordered]:
    """The worker's ``rows`` rows, part after part as each is written."""
    for part in count(1):
        for line in src:
            head, doc = line.rstrip(b"\n").split(b"\t", 1)
            kind, key, ref, grp, ts = orjson.loads(head)
            rows -= 1
            yield kind, key, Row(kind, key, doc, ref, grp, ts)
        src.close()
        if rows <= 0:
            break
        src = wait(part_path(first, part)).open("rb")
    if rows:
        raise PlanError(f"{first} holds {-rows} rows more than its header says")


def _add_derived(into: dict[str, dict[str, Any]], kind: str, table: dict[str, Any]) -> None:
    """Derived rows are sums over the messages (or clicks): each share adds its part."""
    held = into.setdefault(kind, {})
    for key, row in table.items():
        mine = held.get(key)
        if mine is None:
            held[key] = row
        elif isinstance(row, Aggregate):
            counts = add_counts(mine.counts, row.counts)
            held[key] = Aggregate(row.campaign_id, row.template_name, row.route, row.day, counts)
        elif isinstance(row, ClickCount):
            held[key] = ClickCount(row.tracking_token, row.day, mine.clicks + row.clicks)
        else:  # pragma: no cover - a derived kind without its sum here
            raise TypeError(f"no sum for derived rows of {type(row).__name__}")


def merge(
    plan: ReplayPlan,
    own: Share,
    others: Sequence[Path],
    store: Store | None,
    *,
    name: str,
    stages: Stages | None = None,
    wait: Wait = written,
) -> AuditReport:
    """Every share's rows, in order, fingerprinted and (with a store) written; the report.

    ``others`` are the first parts of the other workers' rows; ``wait`` gives each
    later part once it is there."""
    started = time.process_time()
    segments = dict(own.segments)
    derived: dict[str, dict[str, Any]] = {}
    for kind, table in own.derived.items():
        _add_derived(derived, kind, table)
    rows_by_kind = Counter(own.rows_by_kind)
    states, anomalies = Counter(own.states), Counter(own.anomalies)
    with ExitStack() as files:
        streams: list[Iterator[Ordered]] = [((r.kind, r.key, r) for r in own.rows)]
        for path in others:
            src = files.enter_context(path.open("rb"))
            header = header_of(src, path, (ROWS_FORMAT,), plan.id)
            segments.update(segments_of(header["segments"]))
            rows_by_kind.update(header["rows_by_kind"])
            states.update(header["states"])
            anomalies.update(header["anomalies"])
            for kind, raw in header["derived"].items():
                _add_derived(derived, kind, load_table(kind, orjson.dumps(raw)))
            rows = sum(header["rows_by_kind"].values())
            streams.append(_rows_in(path, src, rows, wait))
        whole = Partial(plan.specs, {}, segments)
        reached = whole.reached()
        plan.check_read(reached)
        extra = sorted(
            (kind, key, row_of(kind, key, row, dump_doc(row)))
            for kind, t in derived.items()
            for key, row in t.items()
        )
        for kind, table in derived.items():
            rows_by_kind[kind] = len(table)
        rows = (row for _, _, row in heapq.merge(*streams, extra))
        offsets = read_offsets(reached)
        if stages is not None:
            stages.add("merge", time.process_time() - started)
        digests = write_rows(rows, plan.specs, store, name=name, offsets=offsets, stages=stages)
    report = report_of(plan.specs, whole.tally(), rows_by_kind, states, anomalies, digests)
    return stamp(report, offsets, plan.until_ms, len(plan.shards))
