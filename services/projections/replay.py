"""Replay for audits: rebuild projections from the log into a fresh store and report.

A replay reads from the beginning of every stream up to a bound: the streams'
ends when it started, the offsets stored by another (live) projector, or the
last record logged at or before a point in time. The audit report counts
events per type and messages per state, lists anomalies, and gives a digest
per projection; the same log up to the same offsets always gives the same
digests, which is how a replay is compared with the live projection.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common.settings import CommonSettings
from services.projections.delivery import MessageState
from services.projections.projection import Projection, ProjectionSpec, digest_lines
from services.projections.projector import Bounds, Progress, Projector
from services.projections.store import Store, StoreError


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "projections": self.projections,
            "until": self.until,
            "records_read": self.records_read,
            "events_by_type": self.events_by_type,
            "rows_by_kind": self.rows_by_kind,
            "messages_by_state": self.messages_by_state,
            "anomalies": self.anomalies,
            "digests": self.digests,
            "offsets": self.offsets,
        }


def audit(projection: Projection, projector: Projector) -> AuditReport:
    """What the rebuilt state holds, and what in it deserves a second look."""
    anomalies: Counter[str] = Counter(projector.anomalies)
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
    lines = list(projection.rows())  # serialised once, fingerprinted per projection
    digests = {
        spec.name: digest_lines(line for line in lines if line[0] in spec.kinds)
        for spec in projection.specs
    }
    digests["all"] = digest_lines(lines)
    return AuditReport(
        projections=[s.name for s in projection.specs],
        records_read=projector.read,
        events_by_type=dict(sorted(projection.by_type.items())),
        rows_by_kind={k: len(v) for k, v in sorted(projection.entities.items())},
        messages_by_state=dict(sorted(states.items())),
        anomalies=dict(sorted(anomalies.items())),
        digests=digests,
        offsets={f"{t}[{p}]": n for (t, p), n in sorted(projector.offsets.items())},
    )


async def replay(
    settings: CommonSettings,
    specs: tuple[ProjectionSpec, ...],
    *,
    store_url: str | None,
    until: datetime | None = None,
    offsets_of: tuple[str, str] | None = None,
    progress: Progress | None = None,
    name: str = "mmbus-replay",
) -> AuditReport:
    """Rebuild ``specs`` into a fresh store (or memory only) and audit the result.

    ``offsets_of`` is (store URL, projector name): replay exactly up to the offsets
    that projector stored, to compare digests with it.
    """
    bound_offsets = None
    if offsets_of is not None:
        with Store(offsets_of[0]) as live:
            bound_offsets = live.offsets(offsets_of[1])
        if not bound_offsets:
            raise StoreError(
                f"projector {offsets_of[1]!r} has no offsets in {offsets_of[0]}; "
                "check --offsets-of and --projector-name"
            )
    store = Store(store_url).open() if store_url else None
    try:
        if store is not None and not store.is_empty():
            raise StoreError(
                f"{store_url} already holds projections; a replay needs a fresh store "
                "(a new file or database)"
            )
        projection = Projection(specs)
        projector = Projector(
            settings,
            projection,
            store,
            name=name,
            bounds=Bounds(
                offsets=bound_offsets,
                until_ms=int(until.timestamp() * 1000) if until is not None else None,
            ),
            progress=progress,
            # A fresh store is written for the audit's end state: few, large transactions.
            flush_every_records=100_000,
        )
        await projector.run(asyncio.Event())
        report = audit(projection, projector)
        report.until = until.isoformat() if until else None
        if store is not None:
            # The stored rows, not only memory, must carry the same fingerprint.
            stored = store.digest(projection.kinds)
            if stored != report.digests["all"]:
                raise StoreError(f"stored digest {stored} differs from memory {report.digests}")
        return report
    finally:
        if store is not None:
            store.close()
