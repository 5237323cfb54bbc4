"""Read models for the operator console: campaigns, billing, errors, a timeline, onboarding.

Pure functions over loaded states, like :mod:`services.projections.views`; the
query API's console endpoints load the rows and call them. Nothing here reads
Kafka: every figure is what the projections hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from services.projections.delivery import Aggregate, MessageState
from services.projections.onboarding import NumberState, OnboardingView, PortfolioState
from services.projections.projection import ClickCount
from services.projections.views import funnel, rates

# What the people who run campaigns call the two routes.
API_OF_ROUTE = {"marketing_messages": "MM API", "messages": "Cloud API", "not_sent": "not sent"}
# Bucket widths a timeline may use, in seconds: the first that keeps it under MAX_POINTS.
BUCKETS = (1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)
MAX_POINTS = 60
EXAMPLES = 5


def campaign_summaries(
    aggregates: Iterable[Aggregate], clicks: Iterable[ClickCount], campaign_of: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One line per campaign (by id), from its aggregates and its tokens' clicks.

    Messages without a campaign are left out: no campaign view can be opened for them.
    """
    rows: dict[str, list[Aggregate]] = {}
    for row in aggregates:
        if row.campaign_id:
            rows.setdefault(row.campaign_id, []).append(row)
    counted: dict[str, list[ClickCount]] = {}
    for count in clicks:
        campaign = campaign_of.get(count.tracking_token)
        if campaign:
            counted.setdefault(campaign, []).append(count)
    items = []
    for campaign_id in sorted(rows):
        report = funnel(campaign_id, rows[campaign_id], counted.get(campaign_id, ()))
        days = sorted(r.day for r in rows[campaign_id])
        items.append(
            {
                "campaign_id": campaign_id,
                "first_day": days[0],
                "last_day": days[-1],
                "funnel": report["funnel"],
                "rates": rates(report["funnel"]),
                "billable": sum(report["billable_by_category"].values()),
            }
        )
    return items


def billing(campaign_id: str | None, aggregates: Iterable[Aggregate]) -> dict[str, Any]:
    """The route split (MM API, Cloud API, not sent) with billable messages by pricing category."""
    by_route: dict[str, dict[str, int]] = {}
    for row in aggregates:
        into = by_route.setdefault(row.route, {})
        for name, n in row.counts.items():
            into[name] = into.get(name, 0) + n
    routes = []
    total: dict[str, int] = {}
    for route in sorted(by_route):
        counts = by_route[route]
        billed = {
            name.removeprefix("billable."): n
            for name, n in sorted(counts.items())
            if name.startswith("billable.") and n
        }
        for category, n in billed.items():
            total[category] = total.get(category, 0) + n
        stages = ("requested", "accepted", "sent", "delivered", "read", "failed", "fell_back")
        routes.append(
            {
                "route": route,
                "api": API_OF_ROUTE.get(route, route),
                **{name: counts.get(name, 0) for name in stages},
                "billable": sum(billed.values()),
                "billable_by_category": billed,
            }
        )
    return {
        "campaign_id": campaign_id,
        "routes": routes,
        "billable_by_category": dict(sorted(total.items())),
        "billable": sum(total.values()),
        "fell_back": sum(r["fell_back"] for r in routes),
    }


def resolution(m: MessageState) -> str | None:
    """What became of a send the sender could not tell was made; None if it never was unclear.

    ``status_webhook``: Meta later sent a status for it, so it was sent;
    ``later_attempt``: another attempt of the same command got a verdict;
    ``open``: nothing has told yet (the funnel's ``indeterminate``).
    """
    if all(name != "indeterminate" for name, _ in m.times):
        return None
    if m.status is not None:
        return "status_webhook"
    if m.outcome != "indeterminate":
        return "later_attempt"
    return "open"


def _counted(groups: dict[Any, list[str]], key: Any, message_key: str) -> None:
    groups.setdefault(key, []).append(message_key)


def _ranked(groups: dict[Any, list[str]]) -> list[tuple[Any, list[str]]]:
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), str(kv[0])))


def error_report(campaign_id: str | None, messages: Iterable[MessageState]) -> dict[str, Any]:
    """Failures by Meta's code and title, suppressions by rule, rejections by reason, and the
    indeterminate sends with whether anything has since settled them."""
    failures: dict[tuple[int | None, str | None], list[str]] = {}
    suppressions: dict[str, list[str]] = {}
    rejections: dict[str, list[str]] = {}
    unclear = []
    for m in messages:
        if m.state == "failed":
            _counted(failures, (m.error_code, m.error_title), m.key)
        if m.outcome == "suppressed":
            _counted(suppressions, m.outcome_detail or "unknown", m.key)
        if m.outcome == "rejected":
            _counted(rejections, m.outcome_detail or "unknown", m.key)
        settled = resolution(m)
        if settled is not None:
            unclear.append(
                {
                    "key": m.key,
                    "command_id": m.command_id,
                    "wamid": m.wamid,
                    "campaign_id": m.campaign_id,
                    "since": dict(m.times)["indeterminate"],
                    "state": m.state,
                    "resolution": settled,
                    "reconciled": settled != "open",
                }
            )
    return {
        "campaign_id": campaign_id,
        "failures": [
            {"code": code, "title": title, "count": len(keys), "examples": sorted(keys)[:EXAMPLES]}
            for (code, title), keys in _ranked(failures)
        ],
        "suppressions": [
            {"rule": rule, "count": len(keys), "examples": sorted(keys)[:EXAMPLES]}
            for rule, keys in _ranked(suppressions)
        ],
        "rejections": [
            {"reason": reason, "count": len(keys), "examples": sorted(keys)[:EXAMPLES]}
            for reason, keys in _ranked(rejections)
        ],
        "indeterminate": sorted(unclear, key=lambda u: (u["since"], u["key"])),
    }


def bucket_seconds(span: timedelta) -> int:
    """The narrowest bucket that shows ``span`` in at most MAX_POINTS points."""
    seconds = span.total_seconds()
    for width in BUCKETS:
        if seconds < width * MAX_POINTS:
            return width
    days = int(seconds // (86400 * MAX_POINTS)) + 1
    return 86400 * days


def timeline(
    campaign_id: str, messages: Iterable[MessageState], clicks: Iterable[datetime]
) -> dict[str, Any]:
    """Deliveries, reads and clicks per time bucket, every bucket from the first to the last.

    A message read without a delivered status counts as delivered when read, as the
    funnel counts it, so the series add up to the funnel's delivered, read and clicked.
    """
    series: dict[str, list[datetime]] = {"delivered": [], "read": [], "clicked": list(clicks)}
    for m in messages:
        times = dict(m.times)
        delivered = times.get("delivered") or times.get("read")
        if delivered is not None:
            series["delivered"].append(delivered)
        if "read" in times:
            series["read"].append(times["read"])
    every = [t for values in series.values() for t in values]
    if not every:
        return {"campaign_id": campaign_id, "bucket_seconds": BUCKETS[0], "points": []}
    first, last = min(every), max(every)
    width = bucket_seconds(last - first)
    origin = datetime(1970, 1, 1, tzinfo=UTC)

    def index(t: datetime) -> int:
        return int((t - origin).total_seconds() // width)

    start = index(first)
    counts = [dict.fromkeys(series, 0) for _ in range(index(last) - start + 1)]
    for name, values in series.items():
        for t in values:
            counts[index(t) - start][name] += 1
    points = [
        {"start": origin + timedelta(seconds=(start + i) * width), **c}
        for i, c in enumerate(counts)
    ]
    return {"campaign_id": campaign_id, "bucket_seconds": width, "points": points}


def number_rows(
    numbers: Iterable[NumberState], views: Mapping[str, OnboardingView]
) -> list[dict[str, Any]]:
    """Numbers with the onboarding state they inherit from their WABA, and when they were seen."""
    rows = []
    for n in sorted(numbers, key=lambda n: n.phone_number_id):
        view = views.get(n.waba_id)
        rows.append(
            {
                "phone_number_id": n.phone_number_id,
                "waba_id": n.waba_id,
                "status": view.status if view else "unknown",
                "since": view.since if view else None,
                "because": view.because if view else None,
                "first_seen": n.first_seen,
                "first_seen_because": n.because,
            }
        )
    return rows


def portfolio_rows(
    portfolios: Iterable[PortfolioState], views: Iterable[OnboardingView]
) -> list[dict[str, Any]]:
    """Business portfolios, whether one of their WABAs signed the terms, and their WABAs."""
    wabas: dict[str, list[str]] = {}
    for view in views:
        if view.business_id:
            wabas.setdefault(view.business_id, []).append(view.waba_id)
    known = {p.business_id: p for p in portfolios}
    rows = []
    for business in sorted(set(known) | set(wabas)):
        p = known.get(business, PortfolioState(business_id=business))
        rows.append(
            {
                "business_id": business,
                "terms_signed_at": p.terms_signed_at,
                "because": p.because,
                "signed_via_waba": p.signed_via_waba,
                "wabas": sorted(wabas.get(business, [])),
            }
        )
    return rows
