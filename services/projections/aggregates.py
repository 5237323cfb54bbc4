"""Campaign aggregates: what each message adds to its campaign/template/route/day row.

An aggregate row is a function of the messages alone (the sum of their
contributions), so it can be kept in step incrementally (the live projector
moves a message's contribution when the message changes) or computed once from
the final messages (a replay, after joining partial states): both give the
same rows, which the digests compare.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # delivery imports this module; the state is only read here
    from services.projections.delivery import MessageState

COUNTS = (
    "requested",
    "accepted",
    "sent",
    "delivered",
    "read",
    "failed",
    "suppressed",
    "rejected",
    "indeterminate",
    "fell_back",
)
_SENT = frozenset({"sent", "delivered", "read"})
_DELIVERED = frozenset({"delivered", "read"})


@dataclass(frozen=True)
class AggregateKey:
    campaign_id: str
    template_name: str
    route: str
    day: str

    @property
    def text(self) -> str:
        return f"{self.campaign_id}|{self.template_name}|{self.route}|{self.day}"


@dataclass(frozen=True)
class Aggregate:
    campaign_id: str
    template_name: str
    route: str
    day: str
    counts: dict[str, int] = field(default_factory=dict)


def contribution(m: MessageState) -> tuple[AggregateKey, dict[str, int]] | None:
    """What one message adds to its campaign/template/route/day row (from its state alone)."""
    first = m.requested_at or min((when for _, when in m.times), default=None)
    if first is None:
        return None
    key = AggregateKey(
        campaign_id=m.campaign_id or "",
        template_name=m.template_name or "",
        route=m.endpoint or "not_sent",
        day=first.date().isoformat(),
    )
    reached = {name for name, _ in m.times}
    counts = {
        "requested": int(m.requested_at is not None),
        "accepted": int(m.outcome == "accepted"),
        "sent": int(not _SENT.isdisjoint(reached)),
        "delivered": int(not _DELIVERED.isdisjoint(reached)),
        "read": int("read" in reached),
        "failed": int(m.state == "failed"),
        "suppressed": int(m.outcome == "suppressed"),
        "rejected": int(m.outcome == "rejected"),
        "indeterminate": int(m.outcome == "indeterminate" and m.status is None),
        "fell_back": int(m.fell_back),
    }
    if m.pricing is not None and m.pricing.billable:
        counts[f"billable.{m.pricing.category or 'unknown'}"] = 1
    return key, {name: n for name, n in counts.items() if n}


def add_counts(a: dict[str, int], b: dict[str, int], sign: int = 1) -> dict[str, int]:
    out = dict(a)
    for name, n in b.items():
        out[name] = out.get(name, 0) + sign * n
        if out[name] == 0:
            del out[name]
    return out


def aggregate_all(messages: Iterable[MessageState]) -> dict[str, Aggregate]:
    """Every aggregate row, from the final messages: what the live increments add up to."""
    sums: dict[str, tuple[AggregateKey, dict[str, int]]] = {}
    for m in messages:
        part = contribution(m)
        if part is None or not part[1]:
            continue
        key, counts = part
        text = key.text
        held = sums.get(text)
        if held is None:
            sums[text] = (key, dict(counts))
        else:
            total = held[1]
            for name, n in counts.items():
                total[name] = total.get(name, 0) + n
    return {
        text: Aggregate(key.campaign_id, key.template_name, key.route, key.day, counts)
        for text, (key, counts) in sums.items()
    }
