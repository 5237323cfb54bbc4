"""The query API (JSON over HTTP) on the projector's store, with /metrics, /health and /ready.

Lists are paginated by key: pass the ``next`` value of one page as ``after``
to get the next. Time filters (``since``, ``until``) take ISO 8601 dates or
times (UTC when no offset is given) and are half-open: since <= t < until.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mmbus.folds import RecipientState, TemplateState, WabaState
from services.projections.delivery import Aggregate, MessageState, TokenState
from services.projections.onboarding import PortfolioState, onboarding_view
from services.projections.projection import ClickCount, load_doc
from services.projections.store import Store
from services.projections.views import funnel, message_detail, onboarding_detail

MAX_LIMIT = 1000


class BadQuery(ValueError):
    pass


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
    )


def _time(value: str | None, name: str, *, day: bool = False) -> str | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadQuery(
            f"{name} must be an ISO 8601 date or time, e.g. 2026-11-21T10:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.date().isoformat() if day else parsed.isoformat()


def _next(rows: list[tuple[str, str]], limit: int) -> str | None:
    """The cursor of the next page: the last key of a full page."""
    return rows[-1][0] if len(rows) == limit else None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def query_app(
    store: Store,
    *,
    ready: Callable[[], dict[str, Any]],
    registry: CollectorRegistry | None = None,
) -> Starlette:
    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def waba(request: Request) -> Response:
        waba_id = request.path_params["waba_id"]
        doc = await run(store.get, "waba", waba_id)
        state: WabaState | None = load_doc("waba", doc) if doc else None
        portfolio = None
        if state is not None and state.owner_business_id:
            pdoc = await run(store.get, "portfolio", state.owner_business_id)
            portfolio = load_doc("portfolio", pdoc) if pdoc else None
        numbers = [key for key, _ in await run(store.by_ref, "number", waba_id)]
        if state is None and not numbers:
            return _json({"error": f"no events about WABA {waba_id}"}, 404)
        return _json(onboarding_detail(onboarding_view(waba_id, state, portfolio), numbers))

    async def wabas(request: Request) -> Response:
        limit = _limit(request)
        rows = await run(store.find, "waba", after=request.query_params.get("after"), limit=limit)
        items = []
        for key, doc in rows:
            state: WabaState = load_doc("waba", doc)
            portfolio: PortfolioState | None = None
            if state.owner_business_id:
                pdoc = await run(store.get, "portfolio", state.owner_business_id)
                portfolio = load_doc("portfolio", pdoc) if pdoc else None
            numbers = [k for k, _ in await run(store.by_ref, "number", key)]
            items.append(onboarding_detail(onboarding_view(key, state, portfolio), numbers))
        wanted = request.query_params.get("status")
        if wanted:
            items = [i for i in items if i["status"] == wanted]
        return _json({"items": items, "next": _next(rows, limit)})

    async def message(request: Request) -> Response:
        ident = request.path_params["message_id"]
        doc = await run(store.get, "message", ident)
        if doc is None:
            found = await run(store.by_ref, "message", ident)
            doc = found[0][1] if found else None
        if doc is None:
            return _json({"error": f"no message with command id or wamid {ident}"}, 404)
        state: MessageState = load_doc("message", doc)
        return _json(message_detail(state))

    async def messages(request: Request) -> Response:
        q = request.query_params
        limit = _limit(request)
        rows = await run(
            store.find,
            "message",
            grp=q.get("campaign_id"),
            since=_time(q.get("since"), "since"),
            until=_time(q.get("until"), "until"),
            after=q.get("after"),
            limit=limit,
        )
        items = [message_detail(load_doc("message", doc)) for _, doc in rows]
        if q.get("state"):
            # Filtered within the page: a page may hold fewer than `limit`; follow `next`.
            items = [m for m in items if m["state"] == q["state"]]
        return _json({"items": items, "next": _next(rows, limit)})

    async def campaign_funnel(request: Request) -> Response:
        campaign_id = request.path_params["campaign_id"]
        q = request.query_params
        since = _time(q.get("since"), "since", day=True)
        until = _time(q.get("until"), "until", day=True)
        rows = await run(store.find, "aggregate", grp=campaign_id, since=since, until=until)
        aggregates: list[Aggregate] = [load_doc("aggregate", doc) for _, doc in rows]
        tokens = [key for key, _ in await run(store.find, "token", grp=campaign_id)]
        click_rows = await run(store.find, "click_count", grps=tokens, since=since, until=until)
        clicks: list[ClickCount] = [load_doc("click_count", doc) for _, doc in click_rows]
        if not aggregates and not clicks:
            return _json({"error": f"no messages for campaign {campaign_id}"}, 404)
        return _json(funnel(campaign_id, aggregates, clicks))

    async def suppression(request: Request) -> Response:
        user = request.path_params["user_id"]
        doc = await run(store.get, "recipient", user)
        if doc is None:
            return _json(
                {"user_id": user, "stopped_marketing": False, "since": None, "because": None}
            )
        state: RecipientState = load_doc("recipient", doc)
        return _json(state)

    async def suppressions(request: Request) -> Response:
        q = request.query_params
        limit = _limit(request)
        rows = await run(
            store.find,
            "recipient",
            since=_time(q.get("since"), "since"),
            until=_time(q.get("until"), "until"),
            after=q.get("after"),
            limit=limit,
        )
        states: list[RecipientState] = [load_doc("recipient", doc) for _, doc in rows]
        items = [s for s in states if s.stopped_marketing]
        return _json({"items": items, "next": _next(rows, limit)})

    async def template(request: Request) -> Response:
        key = f"{request.path_params['waba_id']}:{request.path_params['name']}"
        doc = await run(store.get, "template", key)
        if doc is None:
            return _json({"error": f"no events about template {key}"}, 404)
        state: TemplateState = load_doc("template", doc)
        return _json(state)

    async def clicks(request: Request) -> Response:
        token = request.query_params.get("tracking_token")
        if not token:
            raise BadQuery("tracking_token is required")
        rows = await run(store.find, "click_count", grp=token)
        counts: list[ClickCount] = [load_doc("click_count", doc) for _, doc in rows]
        owner = await run(store.get, "token", token)
        campaign: TokenState | None = load_doc("token", owner) if owner else None
        return _json(
            {
                "tracking_token": token,
                "campaign_id": campaign.campaign_id if campaign else None,
                "clicks": sum(c.clicks for c in counts),
                "by_day": {c.day: c.clicks for c in counts},
            }
        )

    async def health(_: Request) -> Response:
        state = ready()
        ok = state.get("failed") is None
        return _json({"status": "ok" if ok else "failed", **state}, 200 if ok else 503)

    async def readiness(_: Request) -> Response:
        state = ready()
        return _json(state, 200 if state.get("ready") else 503)

    async def metrics(_: Request) -> Response:
        body = generate_latest(registry) if registry is not None else b""
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def wrapped(request: Request) -> Response:
            try:
                response: Response = await handler(request)
                return response
            except BadQuery as exc:
                return _json({"error": str(exc)}, 400)

        return wrapped

    routes = [
        ("/v1/wabas", wabas),
        ("/v1/wabas/{waba_id}", waba),
        ("/v1/messages", messages),
        ("/v1/messages/{message_id}", message),
        ("/v1/campaigns/{campaign_id}/funnel", campaign_funnel),
        ("/v1/suppressions", suppressions),
        ("/v1/suppressions/{user_id}", suppression),
        ("/v1/templates/{waba_id}/{name}", template),
        ("/v1/clicks", clicks),
        ("/health", health),
        ("/ready", readiness),
        ("/metrics", metrics),
    ]
    return Starlette(routes=[Route(path, guarded(fn)) for path, fn in routes])
