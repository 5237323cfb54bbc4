"""Partial states and their join: the replay of a log split among workers, made whole.

A worker folds some partitions of the streams into a :class:`Partial`: the
entities it saw (the derived rows, aggregates and click counts, are left for
the end) and, per log segment it read, what it counted there. :func:`join`
combines two partials into the partial of both segments. It is commutative,
associative and idempotent, so partials may be joined in any order and
grouping, and joining one twice changes nothing: the result, and so the
digest, is that of one process folding the whole log.

A message's events are spread over streams (send events by phone number,
statuses by wamid), so two workers may each hold part of one message: their
states merge with the delivery fold's own :func:`merge`. A status that only
one worker saw, naming a wamid it could not link, is kept under
``w:<wamid>``; once joined, it is merged into the message that the other
worker's ``send.accepted`` linked to that wamid, as a single fold would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mmbus.folds import join_recipient, join_template, join_waba
from services.projections.clicks import join_tokens
from services.projections.message import MessageState, merge
from services.projections.onboarding import join_numbers, join_portfolios
from services.projections.projection import DERIVED_KINDS, Projection, ProjectionSpec

# One partition read from ``start`` up to ``next`` (excluded): (topic, partition, start, next).
SpanRead = tuple[str, int, int, int]
Segment = tuple[SpanRead, ...]


@dataclass(frozen=True)
class Tally:
    """What a worker counted while reading a segment (for the audit report)."""

    read: int
    by_type: Mapping[str, int] = field(default_factory=dict)
    undecodable: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Partial:
    specs: tuple[ProjectionSpec, ...]
    entities: dict[str, dict[str, Any]]  # folded kinds only
    segments: dict[Segment, Tally]

    @classmethod
    def of(cls, projection: Projection, segment: Segment, tally: Tally) -> Partial:
        entities = {
            kind: table for kind, table in projection.entities.items() if kind not in DERIVED_KINDS
        }
        return cls(projection.specs, entities, {segment: tally})

    def projection(self) -> Projection:
        """The whole state: these entities (the derived rows follow on ``settle``)."""
        projection = Projection(self.specs, incremental=False)
        projection.adopt(self.entities)
        return projection

    def tally(self) -> Tally:
        read = 0
        by_type: dict[str, int] = {}
        undecodable: dict[str, int] = {}
        for t in self.segments.values():
            read += t.read
            for name, n in t.by_type.items():
                by_type[name] = by_type.get(name, 0) + n
            for name, n in t.undecodable.items():
                undecodable[name] = undecodable.get(name, 0) + n
        return Tally(read, by_type, undecodable)

    def reached(self) -> dict[tuple[str, int], tuple[int, int]]:
        """Per partition, the offsets read (start, next); overlapping segments refused."""
        out: dict[tuple[str, int], tuple[int, int]] = {}
        for segment in self.segments:
            for topic, partition, start, nxt in segment:
                if (topic, partition) in out:
                    raise JoinError(
                        f"{topic}[{partition}] was read by two workers: the partial states "
                        "come from different plans"
                    )
                out[(topic, partition)] = (start, nxt)
        return out


class JoinError(Exception):
    """Partial states that cannot be joined (different projections)."""


Join = Callable[[Any, Any], Any]


def _same(a: Any, b: Any) -> Any:
    """Entities keyed by their event id: both sides hold the same one."""
    return a if a == b else min(a, b, key=repr)


_JOINS: dict[str, Join] = {
    "waba": join_waba,
    "portfolio": join_portfolios,
    "number": join_numbers,
    "template": join_template,
    "recipient": join_recipient,
    "token": join_tokens,
    "click": _same,
}


def join(a: Partial, b: Partial) -> Partial:
    """The partial state of both sides' segments (pure: neither side is changed)."""
    if {s.name for s in a.specs} != {s.name for s in b.specs}:
        raise JoinError("partial states of different projections cannot be joined")
    entities: dict[str, dict[str, Any]] = {}
    for kind in a.entities.keys() | b.entities.keys():
        mine, theirs = a.entities.get(kind, {}), b.entities.get(kind, {})
        if kind == "message":
            entities[kind] = join_messages(mine, theirs)
        else:
            entities[kind] = _join_tables(mine, theirs, _JOINS[kind])
    return Partial(a.specs, entities, {**a.segments, **b.segments})


def join_all(partials: Iterable[Partial]) -> Partial:
    joined: Partial | None = None
    for partial in partials:
        joined = partial if joined is None else join(joined, partial)
    if joined is None:
        raise JoinError("nothing to join")
    return joined


def _join_tables(a: dict[str, Any], b: dict[str, Any], how: Join) -> dict[str, Any]:
    if len(b) > len(a):
        a, b = b, a  # the joins are commutative: walk the smaller side
    out = dict(a)
    for key, state in b.items():
        held = out.get(key)
        out[key] = state if held is None else how(held, state)
    return out


def join_messages(
    a: dict[str, MessageState], b: dict[str, MessageState]
) -> dict[str, MessageState]:
    """Messages of both sides, merged per key, with each ``w:<wamid>`` entry merged into
    the message linked to that wamid when one is known (the smallest key, if several)."""
    out = _join_tables(a, b, merge)
    orphans = [key for key, m in out.items() if orphan_wamid(key, m)]
    if not orphans:
        return out
    linked: dict[str, str] = {}
    for key, m in out.items():
        wamid = linked_wamid(m)
        if wamid is not None:
            held = linked.get(wamid)
            if held is None or key < held:
                linked[wamid] = key
    for key in orphans:
        target = linked.get(orphan_wamid(key, out[key]) or "")
        if target is not None:
            out[target] = merge(out[target], out.pop(key))
    return out


def linked_wamid(m: MessageState) -> str | None:
    """The wamid a message links its command to: ``w:<wamid>`` entries merge into it."""
    return m.wamid if m.command_id and m.wamid else None


def orphan_wamid(key: str, m: MessageState) -> str | None:
    """The wamid of a ``w:<wamid>`` entry (statuses no send had linked yet), else None."""
    return m.wamid if key.startswith("w:") and m.wamid else None
