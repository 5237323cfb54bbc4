"""The end of a replay: the whole state derived, fingerprinted, stored, and audited."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.projections.join import Tally
from services.projections.message import MessageState
from services.projections.projection import Projection, ProjectionSpec
from services.projections.rows import Block, Fingerprints, Row, blocks_of, serialised
from services.projections.shard import Stages
from services.projections.store import Offsets, Store, StoreError

STORE_CHUNK = 5000  # rows the store takes at a time


@dataclass
class AuditReport:
    projections: list[str]
    records_read: int
    events_by_type: dict[str, int]
    rows_by_kind: dict[str, int]
    messages_by_state: dict[str, int]
    anomalies: dict[str, int]
    digests: dict[str, str]
    offsets: dict[str, int] = field(default_factory=dict)
    until: str | None = None
    workers: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "projections": self.projections,
            "until": self.until,
            "workers": self.workers,
            "records_read": self.records_read,
            "events_by_type": self.events_by_type,
            "rows_by_kind": self.rows_by_kind,
            "messages_by_state": self.messages_by_state,
            "anomalies": self.anomalies,
            "digests": self.digests,
            "offsets": self.offsets,
        }


def findings(messages: Iterable[MessageState]) -> tuple[Counter[str], Counter[str]]:
    """Messages per state, and the anomalies among them (sums over any split of them)."""
    anomalies: Counter[str] = Counter()
    states: Counter[str] = Counter()
    for m in messages:
        states[m.state] += 1
        if m.command_id is None:
            anomalies["status_for_unknown_message"] += 1
        if m.fell_back:
            anomalies["fell_back_to_cloud_api"] += 1
        if m.outcome == "indeterminate" and m.status is None:
            anomalies["indeterminate_unreconciled"] += 1
        if m.outcome == "indeterminate" and m.status is not None:
            anomalies["indeterminate_reconciled_by_status"] += 1
        if m.requested_at is None and m.command_id is not None:
            anomalies["result_without_command"] += 1
    return states, anomalies


def report_of(
    specs: Iterable[ProjectionSpec],
    tally: Tally,
    rows_by_kind: Mapping[str, int],
    states: Mapping[str, int],
    anomalies: Mapping[str, int],
    digests: dict[str, str],
) -> AuditReport:
    found: Counter[str] = Counter(tally.undecodable)
    found.update(anomalies)
    return AuditReport(
        projections=[s.name for s in specs],
        records_read=tally.read,
        events_by_type=dict(sorted(tally.by_type.items())),
        rows_by_kind=dict(sorted(rows_by_kind.items())),
        messages_by_state=dict(sorted(states.items())),
        anomalies=dict(sorted(found.items())),
        digests=digests,
    )


def stamp(report: AuditReport, offsets: Offsets, until_ms: int | None, workers: int) -> AuditReport:
    """The report with where the replay stopped: offsets, point in time, workers."""
    report.offsets = {f"{t}[{p}]": n for (t, p), n in offsets.items()}
    report.until = (
        datetime.fromtimestamp(until_ms / 1000, tz=UTC).isoformat()
        if until_ms is not None
        else None
    )
    report.workers = workers
    return report


def audit(projection: Projection, tally: Tally, digests: dict[str, str]) -> AuditReport:
    """What the rebuilt state holds, and what in it deserves a second look."""
    states, anomalies = findings(projection.entities.get("message", {}).values())
    rows = {k: len(v) for k, v in projection.entities.items()}
    return report_of(projection.specs, tally, rows, states, anomalies, digests)


def finish(
    projection: Projection,
    store: Store | None,
    *,
    name: str,
    offsets: Offsets,
    stages: Stages | None = None,
) -> dict[str, str]:
    """Derive, fingerprint and (with a store) write the whole state; the digests.

    Entities are serialised once, in (kind, key) order, for both the digest and
    the store, a chunk at a time: a large state is never held twice.
    """
    clock = time.process_time
    started = clock()
    projection.settle()
    if stages is not None:
        stages.add("aggregates", clock() - started)
    serialising = 0.0

    def spent(seconds: float) -> None:
        nonlocal serialising
        serialising += seconds

    rows = serialised(projection.sorted_entities(), columns=store is not None, spent=spent)
    digests = write_rows(rows, projection.specs, store, name=name, offsets=offsets, stages=stages)
    if stages is not None:
        stages.add("rows+digest", serialising)
        stages.add("store", -serialising)
    return digests


def write_rows(
    rows: Iterable[Row],
    specs: Iterable[ProjectionSpec],
    store: Store | None,
    *,
    name: str,
    offsets: Offsets,
    stages: Stages | None = None,
) -> dict[str, str]:
    """Fingerprint rows given in (kind, key) order and (with a store) write them; the digests."""
    blocks = blocks_of(rows, columns=store is not None, size=STORE_CHUNK)
    return write_blocks(blocks, specs, store, name=name, offsets=offsets, stages=stages)


def write_blocks(
    blocks: Iterable[Block],
    specs: Iterable[ProjectionSpec],
    store: Store | None,
    *,
    name: str,
    offsets: Offsets,
    stages: Stages | None = None,
) -> dict[str, str]:
    """:func:`write_rows` for rows given a kind at a time: each block's digest lines
    hashed in one call, its rows (if kept) written to the store."""
    clock = time.process_time
    started = clock()
    prints = Fingerprints({s.name: s.kinds for s in specs})

    def chunks() -> Iterator[list[Row]]:
        for block in blocks:
            prints.add_lines(block.kind, block.lines)
            if block.rows is not None:
                for at in range(0, len(block.rows), STORE_CHUNK):
                    yield block.rows[at : at + STORE_CHUNK]

    if store is None:
        for _ in chunks():
            pass
    else:
        store.load(name, chunks(), offsets)
    digests = prints.digests()
    written = clock()
    if store is not None:
        # The stored rows, not only memory, must carry the same fingerprint.
        stored = store.digest(tuple(k for s in specs for k in s.kinds))
        if stored != digests["all"]:
            raise StoreError(f"stored digest {stored} differs from memory {digests}")
    if stages is not None:
        stages.add("rows+digest", prints.seconds)
        stages.add("store", written - started - prints.seconds)
        stages.add("verify", clock() - written)
    return digests
