"""The query API (JSON over HTTP) on the projector's store, with /metrics, /health and /ready.

FastAPI makes the OpenAPI 3.1 document (``/openapi.json``, browsable at
``/docs``) from the typed parameters and the response models of
:mod:`services.projections.models`; paging and time filters are described in
:data:`DESCRIPTION`, which the document carries. The operator console is
served at ``/``. Handlers are plain functions: FastAPI runs them in worker threads, so the
synchronous store never blocks the event loop the projector folds on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.responses import Response

from mmbus.folds import RecipientState, TemplateState, WabaState
from services.console import mount_console
from services.projections import models
from services.projections.errors import (
    NOT_FOUND,
    NotFound,
    install_error_handlers,
    without_validation_errors,
)
from services.projections.insights import insight_routes
from services.projections.onboarding import PortfolioState, onboarding_view
from services.projections.params import After, Limit, Since, Until, parse_time
from services.projections.projection import ClickCount, load_doc
from services.projections.store import Store
from services.projections.views import funnel, message_detail, onboarding_detail

DESCRIPTION = """\
Lists are paginated by key: pass the `next` value of one page as `after` to get
the next. Time filters (`since`, `until`) take ISO 8601 dates or times (UTC when
no offset is given) and are half-open: since <= t < until. Errors are
`{"error": ...}`: 404 for an unknown id, 400 naming the bad query parameter.
"""


def _next(rows: list[tuple[str, str]], limit: int) -> str | None:
    """The cursor of the next page: the last key of a full page."""
    return rows[-1][0] if len(rows) == limit else None


def core_routes(store: Store) -> APIRouter:
    """The API as it was before the console: WABAs, messages, funnels, suppressions, templates."""
    router = APIRouter()

    def portfolio_of(state: WabaState | None) -> PortfolioState | None:
        if state is None or not state.owner_business_id:
            return None
        doc = store.get("portfolio", state.owner_business_id)
        return load_doc("portfolio", doc) if doc else None

    @router.get(
        "/v1/wabas/{waba_id}",
        response_model=models.WabaOnboarding,
        responses=NOT_FOUND,
        tags=["onboarding"],
        summary="A WABA's onboarding status, since when and why, and its numbers",
    )
    def waba(waba_id: str) -> dict[str, Any]:
        doc = store.get("waba", waba_id)
        state: WabaState | None = load_doc("waba", doc) if doc else None
        numbers = [key for key, _ in store.by_ref("number", waba_id)]
        if state is None and not numbers:
            raise NotFound(f"no events about WABA {waba_id}")
        view = onboarding_view(waba_id, state, portfolio_of(state))
        return onboarding_detail(view, numbers)

    @router.get(
        "/v1/wabas",
        response_model=models.WabaPage,
        tags=["onboarding"],
        summary="WABAs with their onboarding status (filtered within the page by status)",
    )
    def wabas(
        limit: Limit = 100,
        after: After = None,
        status: Annotated[models.OnboardingStatus | None, Query()] = None,
    ) -> dict[str, Any]:
        rows = store.find("waba", after=after, limit=limit)
        items = []
        for key, doc in rows:
            state: WabaState = load_doc("waba", doc)
            numbers = [k for k, _ in store.by_ref("number", key)]
            view = onboarding_view(key, state, portfolio_of(state))
            items.append(onboarding_detail(view, numbers))
        if status:
            items = [i for i in items if i["status"] == status]
        return {"items": items, "next": _next(rows, limit)}

    @router.get(
        "/v1/messages/{message_id}",
        response_model=models.MessageDetail,
        responses=NOT_FOUND,
        tags=["messages"],
        summary="A message by command id or wamid, with its whole history",
    )
    def message(message_id: str) -> dict[str, Any]:
        doc = store.get("message", message_id)
        if doc is None:
            found = store.by_ref("message", message_id)
            doc = found[0][1] if found else None
        if doc is None:
            raise NotFound(f"no message with command id or wamid {message_id}")
        return message_detail(load_doc("message", doc))

    @router.get(
        "/v1/messages",
        response_model=models.MessagePage,
        tags=["messages"],
        summary="Messages by command id, of a campaign and requested in a time range",
    )
    def messages(
        campaign_id: str | None = None,
        since: Since = None,
        until: Until = None,
        state: Annotated[
            models.State | None,
            Query(description="Filtered within the page: a page may hold fewer; follow next."),
        ] = None,
        limit: Limit = 100,
        after: After = None,
    ) -> dict[str, Any]:
        rows = store.find(
            "message",
            grp=campaign_id,
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            after=after,
            limit=limit,
        )
        items = [message_detail(load_doc("message", doc)) for _, doc in rows]
        if state:
            items = [m for m in items if m["state"] == state]
        return {"items": items, "next": _next(rows, limit)}

    @router.get(
        "/v1/campaigns/{campaign_id}/funnel",
        response_model=models.Funnel,
        responses=NOT_FOUND,
        tags=["campaigns"],
        summary="A campaign's funnel and rates, split by route, template and request day",
    )
    def campaign_funnel(
        campaign_id: str, since: Since = None, until: Until = None
    ) -> dict[str, Any]:
        first = parse_time(since, "since", day=True)
        last = parse_time(until, "until", day=True)
        rows = store.find("aggregate", grp=campaign_id, since=first, until=last)
        aggregates = [load_doc("aggregate", doc) for _, doc in rows]
        tokens = [key for key, _ in store.find("token", grp=campaign_id)]
        click_rows = store.find("click_count", grps=tokens, since=first, until=last)
        clicks: list[ClickCount] = [load_doc("click_count", doc) for _, doc in click_rows]
        if not aggregates and not clicks:
            raise NotFound(f"no messages for campaign {campaign_id}")
        return funnel(campaign_id, aggregates, clicks)

    @router.get(
        "/v1/suppressions/{user_id}",
        response_model=models.Recipient,
        tags=["suppressions"],
        summary="Whether a user stopped marketing messages, since when and why",
    )
    def suppression(user_id: str) -> dict[str, Any]:
        doc = store.get("recipient", user_id)
        if doc is None:
            return {"user_id": user_id, "stopped_marketing": False, "since": None, "because": None}
        state: RecipientState = load_doc("recipient", doc)
        return asdict(state)

    @router.get(
        "/v1/suppressions",
        response_model=models.RecipientPage,
        tags=["suppressions"],
        summary="Users who stopped marketing (filtered within the page)",
    )
    def suppressions(
        since: Since = None, until: Until = None, limit: Limit = 100, after: After = None
    ) -> dict[str, Any]:
        rows = store.find(
            "recipient",
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            after=after,
            limit=limit,
        )
        states: list[RecipientState] = [load_doc("recipient", doc) for _, doc in rows]
        items = [asdict(s) for s in states if s.stopped_marketing]
        return {"items": items, "next": _next(rows, limit)}

    @router.get(
        "/v1/templates/{waba_id}/{name}",
        response_model=models.Template,
        responses=NOT_FOUND,
        tags=["templates"],
        summary="A template's category, status and when it was approved and last used",
    )
    def template(waba_id: str, name: str) -> dict[str, Any]:
        key = f"{waba_id}:{name}"
        doc = store.get("template", key)
        if doc is None:
            raise NotFound(f"no events about template {key}")
        state: TemplateState = load_doc("template", doc)
        return asdict(state)

    @router.get(
        "/v1/clicks",
        response_model=models.Clicks,
        tags=["campaigns"],
        summary="Clicks of a tracking token, by day",
    )
    def clicks(tracking_token: Annotated[str, Query(min_length=1)]) -> dict[str, Any]:
        counts: list[ClickCount] = [
            load_doc("click_count", doc) for _, doc in store.find("click_count", grp=tracking_token)
        ]
        owner = store.get("token", tracking_token)
        campaign = load_doc("token", owner).campaign_id if owner else None
        return {
            "tracking_token": tracking_token,
            "campaign_id": campaign,
            "clicks": sum(c.clicks for c in counts),
            "by_day": {c.day: c.clicks for c in counts},
        }

    return router


def probe_routes(
    ready: Callable[[], dict[str, Any]], registry: CollectorRegistry | None
) -> APIRouter:
    router = APIRouter(tags=["operations"])
    unready: dict[int | str, dict[str, Any]] = {
        503: {"model": models.Readiness, "description": "Not ready (or failed)."}
    }

    @router.get(
        "/health", response_model=models.Health, responses=unready, summary="Alive, or failed"
    )
    def health() -> Response | dict[str, Any]:
        state = ready()
        ok = state.get("failed") is None
        body = {"status": "ok" if ok else "failed", **state}
        if ok:
            return body
        return _checked(models.Health, body, 503)

    @router.get(
        "/ready",
        response_model=models.Readiness,
        responses=unready,
        summary="Caught up with the log; `lag` is how many records it is behind",
    )
    def readiness() -> Response | dict[str, Any]:
        state = ready()
        return state if state.get("ready") else _checked(models.Readiness, state, 503)

    @router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    def metrics() -> Response:
        body = generate_latest(registry) if registry is not None else b""
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router


def _checked(model: type[models.Model], body: dict[str, Any], status: int) -> Response:
    """A body for a status FastAPI does not validate, validated all the same."""
    return Response(
        model.model_validate(body).model_dump_json(),
        status_code=status,
        media_type="application/json",
    )


def query_app(
    store: Store,
    *,
    ready: Callable[[], dict[str, Any]],
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    app = FastAPI(
        title="mmbus query API",
        version="1",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    app.include_router(core_routes(store))
    app.include_router(insight_routes(store))
    app.include_router(probe_routes(ready, registry))
    mount_console(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = without_validation_errors(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
