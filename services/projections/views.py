"""Read models computed from stored rows: funnels, onboarding tables, message details.

Pure functions over loaded states, shared by the query API, the audit report
and the live display of ``mmbus run``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from services.projections.delivery import COUNTS, Aggregate, MessageState
from services.projections.onboarding import OnboardingView
from services.projections.projection import ClickCount


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for name, n in counts.items():
        into[name] = into.get(name, 0) + n


def funnel(
    campaign_id: str, aggregates: Iterable[Aggregate], clicks: Iterable[ClickCount]
) -> dict[str, Any]:
    """A campaign's totals, split by route, template and day, with billing by category."""
    totals: dict[str, int] = {}
    by_route: dict[str, dict[str, int]] = {}
    by_template: dict[str, dict[str, int]] = {}
    by_day: dict[str, dict[str, int]] = {}
    for row in aggregates:
        _add(totals, row.counts)
        _add(by_route.setdefault(row.route, {}), row.counts)
        _add(by_template.setdefault(row.template_name, {}), row.counts)
        _add(by_day.setdefault(row.day, {}), row.counts)
    clicked = sum(c.clicks for c in clicks)
    billing = {
        name.removeprefix("billable."): n
        for name, n in totals.items()
        if name.startswith("billable.")
    }
    stages = {name: totals.get(name, 0) for name in COUNTS}
    stages["clicked"] = clicked
    return {
        "campaign_id": campaign_id,
        "funnel": stages,
        "billable_by_category": dict(sorted(billing.items())),
        "by_route": {k: _plain(v) for k, v in sorted(by_route.items())},
        "by_template": {k: _plain(v) for k, v in sorted(by_template.items())},
        "by_day": {k: _plain(v) for k, v in sorted(by_day.items())},
    }


def _plain(counts: dict[str, int]) -> dict[str, int]:
    return {name: counts[name] for name in sorted(counts)}


def message_detail(m: MessageState) -> dict[str, Any]:
    doc = asdict(m)
    doc["state"] = m.state
    doc["fell_back"] = m.fell_back
    doc["history"] = [step._asdict() for step in m.history]
    doc.pop("pricing_from", None)
    doc.pop("error_from", None)
    doc["times"] = dict(m.times)
    return doc


def onboarding_detail(view: OnboardingView, numbers: list[str]) -> dict[str, Any]:
    doc = asdict(view)
    doc["phone_numbers"] = sorted(numbers)
    return doc
