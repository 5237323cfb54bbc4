"""Read models computed from stored rows: funnels, onboarding tables, message details.

Pure functions over loaded states, shared by the query API, the audit report
and the live display of ``mmbus run``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
        "rates": rates(stages),
        "billable_by_category": dict(sorted(billing.items())),
        "by_route": {k: _plain(v) for k, v in sorted(by_route.items())},
        "by_template": {k: _plain(v) for k, v in sorted(by_template.items())},
        "by_day": {k: _plain(v) for k, v in sorted(by_day.items())},
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def rates(stages: Mapping[str, int]) -> dict[str, float | None]:
    """Each stage as a share of the one it follows; a click or a failure of what was sent.

    None, not 0, when nothing reached the stage before: "no rate yet" is not "0 %".
    """
    return {
        "accepted": _share(stages.get("accepted", 0), stages.get("requested", 0)),
        "delivered": _share(stages.get("delivered", 0), stages.get("accepted", 0)),
        "read": _share(stages.get("read", 0), stages.get("delivered", 0)),
        "clicked": _share(stages.get("clicked", 0), stages.get("delivered", 0)),
        "failed": _share(stages.get("failed", 0), stages.get("requested", 0)),
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
