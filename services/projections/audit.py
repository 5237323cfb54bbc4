"""The end of a replay: the whole state derived, fingerprinted, stored, and audited."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from services.projections.join import Tally
from services.projections.message import MessageState
from services.projections.projection import Projection
from services.projections.rows import Fingerprints, Row, dump_doc, row_of
from services.projections.shard import Stages
from services.projections.store import Offsets, Store, StoreError


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


def audit(projection: Projection, tally: Tally, digests: dict[str, str]) -> AuditReport:
    """What the rebuilt state holds, and what in it deserves a second look."""
    anomalies: Counter[str] = Counter(tally.undecodable)
    states: Counter[str] = Counter()
    for m in projection.entities.get("message", {}).values():
        assert isinstance(m, MessageState)
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
    return AuditReport(
        projections=[s.name for s in projection.specs],
        records_read=tally.read,
        events_by_type=dict(sorted(tally.by_type.items())),
        rows_by_kind={k: len(v) for k, v in sorted(projection.entities.items())},
        messages_by_state=dict(sorted(states.items())),
        anomalies=dict(sorted(anomalies.items())),
        digests=digests,
    )


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
    derived = clock()
    prints = Fingerprints({s.name: s.kinds for s in projection.specs})
    serialising = 0.0

    def chunks() -> Iterator[list[Row]]:
        nonlocal serialising
        chunk: list[Row] = []
        mark = clock()
        for kind, key, state in projection.sorted_entities():
            doc = dump_doc(state)
            prints.add(kind, key, doc)
            if store is not None:
                chunk.append(row_of(kind, key, state, doc))
                if len(chunk) >= 5000:
                    serialising += clock() - mark
                    yield chunk
                    chunk = []
                    mark = clock()
        serialising += clock() - mark
        if chunk:
            yield chunk

    if store is None:
        for _ in chunks():
            pass
    else:
        store.load(name, chunks(), offsets)
    written = clock()
    digests = prints.digests()
    if store is not None:
        # The stored rows, not only memory, must carry the same fingerprint.
        stored = store.digest(projection.kinds)
        if stored != digests["all"]:
            raise StoreError(f"stored digest {stored} differs from memory {digests}")
    if stages is not None:
        stages.add("aggregates", derived - started)
        stages.add("rows+digest", serialising)
        stages.add("store", written - derived - serialising)
        stages.add("verify", clock() - written)
    return digests
