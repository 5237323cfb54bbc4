"""Which projections exist: their entity kinds and the event types each folds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mmbus.contracts.topics import Stream, catalogue


@dataclass(frozen=True)
class ProjectionSpec:
    name: str
    kinds: tuple[str, ...]
    types: frozenset[str]


_SEND_RESULTS = frozenset(
    {
        "send.attempted",
        "send.accepted",
        "send.failed",
        "send.suppressed",
        "send.rejected",
        "send.indeterminate",
    }
)

PROJECTIONS: dict[str, ProjectionSpec] = {
    spec.name: spec
    for spec in (
        ProjectionSpec(
            "onboarding",
            ("waba", "portfolio", "number"),
            frozenset(
                {
                    "account.updated",
                    "account.onboarding_observed",
                    "send.attempted",
                    "send.accepted",
                    "message.status",
                }
            ),
        ),
        ProjectionSpec(
            "delivery",
            ("message", "aggregate", "click", "click_count", "token"),
            frozenset({"send.template", "message.status", "marketing.link_clicked"})
            | _SEND_RESULTS,
        ),
        ProjectionSpec(
            "suppression",
            ("recipient",),
            frozenset({"user.marketing_preference_changed", "message.status"}),
        ),
        ProjectionSpec(
            "templates",
            ("template",),
            frozenset(
                {
                    "template.status_changed",
                    "template.category_changed",
                    "template.quality_changed",
                    "send.accepted",
                }
            ),
        ),
    )
}
# Rows that are functions of other rows: derived, never folded or joined.
DERIVED_KINDS = frozenset({"aggregate", "click_count"})


def choose(names: Iterable[str] | None) -> tuple[ProjectionSpec, ...]:
    chosen = list(names) if names else list(PROJECTIONS)
    unknown = [n for n in chosen if n not in PROJECTIONS]
    if unknown:
        raise ValueError(
            f"unknown projection(s) {', '.join(unknown)}; choose from {', '.join(PROJECTIONS)}"
        )
    return tuple(PROJECTIONS[n] for n in sorted(set(chosen)))


def streams_for(specs: Iterable[ProjectionSpec]) -> list[Stream]:
    wanted = set().union(*(s.types for s in specs))
    return [
        spec.stream
        for spec in catalogue("", partitions=1)
        if wanted & set(spec.carries) and spec.stream is not Stream.DEAD_LETTERS
    ]
