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
from datetime import date, datetime
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
    times = m.times
    first = m.requested_at or min((when for _, when in times), default=None)
    if first is None:
        return None
    key = _key(m.campaign_id or "", m.template_name or "", m.endpoint or "not_sent", first)
    # Only the counts a message reaches are set, in COUNTS order: once per message
    # in a replay's end, and per changed message per batch live.
    counts: dict[str, int] = {}
    if m.requested_at is not None:
        counts["requested"] = 1
    outcome = m.outcome
    if outcome == "accepted":
        counts["accepted"] = 1
    if times:
        reached = {name for name, _ in times}
        if not _SENT.isdisjoint(reached):
            counts["sent"] = 1
        if not _DELIVERED.isdisjoint(reached):
            counts["delivered"] = 1
        if "read" in reached:
            counts["read"] = 1
    if m.status == "failed" or outcome == "failed":  # m.state == "failed"
        counts["failed"] = 1
    if outcome == "suppressed":
        counts["suppressed"] = 1
    elif outcome == "rejected":
        counts["rejected"] = 1
    elif outcome == "indeterminate" and m.status is None:
        counts["indeterminate"] = 1
    if m.fell_back:
        counts["fell_back"] = 1
    if m.pricing is not None and m.pricing.billable:
        counts[f"billable.{m.pricing.category or 'unknown'}"] = 1
    return key, counts


_KEYS: dict[tuple[str, str, str, date], AggregateKey] = {}


def _key(campaign_id: str, template_name: str, route: str, first: datetime) -> AggregateKey:
    """Keys repeat (a campaign's messages share a few): one shared, immutable value each,
    found by the day's date rather than building its text per message."""
    found = _KEYS.get((campaign_id, template_name, route, first.date()))
    if found is None:
        found = AggregateKey(campaign_id, template_name, route, first.date().isoformat())
        if len(_KEYS) < 4096:  # odd values are not kept
            _KEYS[(campaign_id, template_name, route, first.date())] = found
    return found


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
