"""The query API's endpoints for the operator console: campaign list, timeline, billing,
errors and the onboarding tables, computed from the projections' rows (never from Kafka).

The campaign list, billing and onboarding read small tables (aggregates, WABAs);
the timeline, the errors and the fell-back list read a campaign's messages (or
every message when no campaign is named), which is what they are about.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.projections import models, reports
from services.projections.delivery import Aggregate, Click, MessageState, TokenState
from services.projections.errors import NOT_FOUND, NotFound
from services.projections.onboarding import (
    NumberState,
    OnboardingView,
    PortfolioState,
    onboarding_view,
)
from services.projections.params import After, Limit
from services.projections.projection import ClickCount, load_doc
from services.projections.store import Store
from services.projections.views import message_detail, onboarding_detail

# Rows read per store query while looking for the messages a filter keeps.
SCAN_PAGE = 500
Campaign = Annotated[
    str | None, Query(description="One campaign's; every campaign's when not given.")
]


def insight_routes(store: Store) -> APIRouter:
    router = APIRouter()

    def loaded(kind: str, **where: Any) -> list[Any]:
        return [load_doc(kind, doc) for _, doc in store.find(kind, **where)]

    def aggregates_of(campaign_id: str | None) -> list[Aggregate]:
        rows: list[Aggregate] = loaded("aggregate", grp=campaign_id)
        if campaign_id is not None and not rows:
            raise NotFound(f"no messages for campaign {campaign_id}")
        return rows

    @router.get(
        "/v1/campaigns",
        response_model=models.CampaignList,
        tags=["campaigns"],
        summary="Every campaign with its funnel and rates",
    )
    def campaigns() -> dict[str, Any]:
        tokens: list[TokenState] = loaded("token")
        campaign_of = {t.tracking_token: t.campaign_id for t in tokens}
        clicks: list[ClickCount] = loaded("click_count")
        return {"items": reports.campaign_summaries(loaded("aggregate"), clicks, campaign_of)}

    @router.get(
        "/v1/campaigns/{campaign_id}/timeline",
        response_model=models.Timeline,
        responses=NOT_FOUND,
        tags=["campaigns"],
        summary="Deliveries, reads and clicks over time (buckets of 1 s to days)",
    )
    def campaign_timeline(campaign_id: str) -> dict[str, Any]:
        aggregates_of(campaign_id)
        messages: list[MessageState] = loaded("message", grp=campaign_id)
        tokens = [key for key, _ in store.find("token", grp=campaign_id)]
        clicks: list[Click] = loaded("click", grps=tokens)
        return reports.timeline(campaign_id, messages, (c.time for c in clicks))

    @router.get(
        "/v1/billing",
        response_model=models.Billing,
        responses=NOT_FOUND,
        tags=["billing"],
        summary="MM API vs Cloud API, billable messages by pricing category, fell-back count",
    )
    def billing(campaign_id: Campaign = None) -> dict[str, Any]:
        return reports.billing(campaign_id, aggregates_of(campaign_id))

    @router.get(
        "/v1/billing/fell-back",
        response_model=models.MessagePage,
        responses=NOT_FOUND,
        tags=["billing"],
        summary="Messages sent to /marketing_messages but priced as Cloud API marketing",
    )
    def fell_back(
        campaign_id: Campaign = None, limit: Limit = 100, after: After = None
    ) -> dict[str, Any]:
        if campaign_id is not None:
            aggregates_of(campaign_id)
        items: list[dict[str, Any]] = []
        cursor = after
        while len(items) < limit:
            rows = store.find("message", grp=campaign_id, after=cursor, limit=SCAN_PAGE)
            for _, doc in rows:
                m: MessageState = load_doc("message", doc)
                if m.fell_back:
                    items.append(message_detail(m))
                    if len(items) == limit:
                        break
            if len(rows) < SCAN_PAGE:
                break
            cursor = rows[-1][0]
        # A full page may have more after it; its last key is where the next starts.
        return {"items": items, "next": items[-1]["key"] if len(items) == limit else None}

    @router.get(
        "/v1/errors",
        response_model=models.ErrorReport,
        responses=NOT_FOUND,
        tags=["errors"],
        summary="Failures by Meta's code, suppressions by rule, rejections, indeterminate sends",
    )
    def errors(campaign_id: Campaign = None) -> dict[str, Any]:
        if campaign_id is not None:
            aggregates_of(campaign_id)
        return reports.error_report(campaign_id, loaded("message", grp=campaign_id))

    @router.get(
        "/v1/onboarding",
        response_model=models.Onboarding,
        tags=["onboarding"],
        summary="Portfolios, WABAs and numbers with their status, since when and why",
    )
    def onboarding() -> dict[str, Any]:
        portfolios: dict[str, PortfolioState] = {p.business_id: p for p in loaded("portfolio")}
        numbers: list[NumberState] = loaded("number")
        states = {w.waba_id: w for w in loaded("waba")}
        views: dict[str, OnboardingView] = {}
        for waba_id in sorted(set(states) | {n.waba_id for n in numbers}):
            state = states.get(waba_id)
            owner = state.owner_business_id if state else None
            views[waba_id] = onboarding_view(waba_id, state, portfolios.get(owner or ""))
        wabas = [
            onboarding_detail(view, [n.phone_number_id for n in numbers if n.waba_id == waba_id])
            for waba_id, view in views.items()
        ]
        return {
            "portfolios": reports.portfolio_rows(portfolios.values(), views.values()),
            "wabas": wabas,
            "numbers": reports.number_rows(numbers, views),
        }

    return router
