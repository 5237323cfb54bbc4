"""The last step of a sharded replay: every worker's finished share, merged by worker 0.

A worker other than 0 hands its :class:`~services.projections.exchange.Share`
back as ``rows-<w>.jsonl``, a header line (the plan's id, the worker, the log
segments it read, its counts, rows per kind among them, and its part of the
derived rows), and then one file per block, ``rows-<w>.<n>.jsonl``: up to
:data:`PART_ROWS` rows of one kind in key order, as a JSON line (the kind, the
keys, the size of each row's digest line, each row's lookup columns when there
is a store, and whether the block is the last) followed by the rows' digest
lines (``rows.line_of``: the bytes the digest is taken over, never parsed
again here). Each file is renamed into place whole, so worker 0 reads a block
while the worker writes the next.

Worker 0 merges a kind at a time (:func:`merged`): the rows of each worker's
blocks put in order by one sort of their keys (each worker's are sorted
already: the sort merges the runs in C), every row up to the latest key of the
last worker's latest block given out as it arrives. It took every row through
a heap before, parsing a JSON head per row, about three times as long. Worker 0
holds its own rows of a kind and the others' not yet given out.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, count
from pathlib import Path
from typing import Any

import orjson

from services.projections.aggregates import Aggregate, add_counts
from services.projections.audit import AuditReport, report_of, stamp, write_blocks
from services.projections.clicks import ClickCount
from services.projections.exchange import Share
from services.projections.join import Partial
from services.projections.partial import atomic_write, header_of, segments_json, segments_of
from services.projections.plan import PlanError, ReplayPlan, read_offsets
from services.projections.rows import Block, Row, blocks_of, dump_doc, load_table, row_of
from services.projections.shard import Stages
from services.projections.store import Store

ROWS_FORMAT = "mmbus-replay-rows/3"  # /2: a line per row; /1: every row in one file
PART_ROWS = 2000

# Returns the path once the file is there; raises if its writer has failed.
Wait = Callable[[Path], Path]


def part_path(first: Path, part: int) -> Path:
    """Part ``part`` of the rows whose first part (with the header) is ``first``."""
    return first if part == 0 else first.with_name(f"{first.stem}.{part}{first.suffix}")


def write_share(path: Path, share: Share, *, plan_id: str, worker: int, columns: bool) -> None:
    """The share as ``path`` (a header line) and one later part per block: a JSON line
    (kind, keys, line sizes, each row's lookup columns with ``columns``, and whether it
    is the last) and its digest lines back to back."""
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
    atomic_write(part_path(path, 0), orjson.dumps(header) + b"\n")
    blocks = blocks_of(share.rows, columns=columns, size=PART_ROWS)
    # No rows: one empty block says so.
    block: Block | None = next(blocks, Block("", [], [], None))
    part = 1
    while block is not None:
        after = next(blocks, None)
        meta = {
            "kind": block.kind,
            "keys": block.keys,
            "sizes": [len(line) for line in block.lines],
            "columns": [r[3:] for r in block.rows] if block.rows is not None else None,
            "last": after is None,
        }
        atomic_write(part_path(path, part), b"".join((orjson.dumps(meta), b"\n", *block.lines)))
        block, part = after, part + 1


def written(path: Path) -> Path:
    """A :data:`Wait` for files already written: a missing one is an error."""
    if not path.exists():
        raise PlanError(f"{path} is missing: a worker's rows are incomplete")
    return path


def _blocks_in(first: Path, wait: Wait) -> Iterator[Block]:
    """A worker's blocks, part after part as each is written."""
    for part in count(1):
        path = wait(part_path(first, part))
        head, _, blob = path.read_bytes().partition(b"\n")
        meta = orjson.loads(head)
        kind, keys, sizes, cols = meta["kind"], meta["keys"], meta["sizes"], meta["columns"]
        ends = list(accumulate(sizes))
        if len(keys) != len(sizes) or (ends[-1] if ends else 0) != len(blob):
            raise PlanError(f"{path} is not a whole block of rows")
        if keys:
            lines = [blob[a:b] for a, b in zip([0, *ends], ends, strict=False)]
            rows = None
            if cols is not None:
                rows = [
                    Row(kind, key, line[len(kind.encode()) + len(key.encode()) + 2 : -1], *c)
                    for key, line, c in zip(keys, lines, cols, strict=True)
                ]
            yield Block(kind, keys, lines, rows)
        if meta["last"]:
            return


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


class _Run:
    """One source's rows of the kind being merged, not yet given out (sorted)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.lines: list[bytes] = []
        self.rows: list[Row] | None = None

    def add(self, block: Block) -> None:
        self.keys += block.keys
        self.lines += block.lines
        if block.rows is not None:
            if self.rows is None:
                self.rows = []
            self.rows += block.rows

    def cut(self, bound: str | None) -> tuple[list[str], list[bytes], list[Row] | None]:
        """The rows up to ``bound`` (all with None), taken out."""
        at = len(self.keys) if bound is None else bisect_right(self.keys, bound)
        taken = self.keys[:at], self.lines[:at], self.rows[:at] if self.rows is not None else None
        self.keys, self.lines = self.keys[at:], self.lines[at:]
        if self.rows is not None:
            self.rows = self.rows[at:]
        return taken


def _given(kind: str, runs: list[_Run], bound: str | None) -> Block | None:
    """The rows of every run up to ``bound``, in key order (one ``sorted`` of the keys:
    each run is sorted already, which the sort finds and merges in C)."""
    lines: dict[str, bytes] = {}
    rows: dict[str, Row] = {}
    count = 0
    for run in runs:
        keys, run_lines, run_rows = run.cut(bound)
        lines.update(zip(keys, run_lines, strict=True))
        if run_rows is not None:
            rows.update(zip(keys, run_rows, strict=True))
        count += len(keys)
    if len(lines) != count:
        raise PlanError(f"two workers' shares hold the same {kind} rows")
    if not lines:
        return None
    keys = sorted(lines)
    return Block(kind, keys, [lines[k] for k in keys], [rows[k] for k in keys] if rows else None)


def merged(sources: list[Iterator[Block]]) -> Iterator[Block]:
    """Blocks in (kind, key) order from sources that each give blocks in that order (the
    shares' keys are disjoint: a key in two of them is refused).

    The sources of a kind are read one after the other; while the last one is read,
    every row up to its latest key is final and given out, so what is left once its
    last block arrives (worker 0 waits for the others' blocks) is one block's worth.
    """
    heads: list[tuple[Block, Iterator[Block]]] = []
    for source in sources:
        first = next(source, None)
        if first is not None:
            heads.append((first, source))
    while heads:
        kind = min(block.kind for block, _ in heads)
        taking = [(b, source) for b, source in heads if b.kind == kind]
        heads = [(b, source) for b, source in heads if b.kind != kind]
        runs = [_Run() for _ in taking]
        for i, (block, source) in enumerate(taking):
            current: Block | None = block
            while current is not None and current.kind == kind:
                runs[i].add(current)
                if i == len(taking) - 1 and (part := _given(kind, runs, current.keys[-1])):
                    yield part
                current = next(source, None)
            if current is not None:
                heads.append((current, source))
        if rest := _given(kind, runs, None):
            yield rest


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

    ``others`` are the first parts of the other workers' rows (their headers, written
    first); ``wait`` gives each file once it is there."""
    started = time.process_time()
    segments = dict(own.segments)
    derived: dict[str, dict[str, Any]] = {}
    for kind, table in own.derived.items():
        _add_derived(derived, kind, table)
    rows_by_kind = Counter(own.rows_by_kind)
    states, anomalies = Counter(own.states), Counter(own.anomalies)
    columns = store is not None
    sources = [blocks_of(own.rows, columns=columns, size=PART_ROWS)]
    for path in others:
        with wait(path).open("rb") as src:
            header = header_of(src, path, (ROWS_FORMAT,), plan.id)
        segments.update(segments_of(header["segments"]))
        rows_by_kind.update(header["rows_by_kind"])
        states.update(header["states"])
        anomalies.update(header["anomalies"])
        for kind, raw in header["derived"].items():
            _add_derived(derived, kind, load_table(kind, orjson.dumps(raw)))
        sources.append(_blocks_in(path, wait))
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
    sources.append(blocks_of((row for _, _, row in extra), columns=columns, size=PART_ROWS))
    offsets = read_offsets(reached)
    if stages is not None:
        stages.add("merge", time.process_time() - started)
    digests = write_blocks(
        merged(sources), plan.specs, store, name=name, offsets=offsets, stages=stages
    )
    report = report_of(plan.specs, whole.tally(), rows_by_kind, states, anomalies, digests)
    return stamp(report, offsets, plan.until_ms, len(plan.shards))
