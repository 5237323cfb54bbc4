"""The Graph API's WABA endpoints: read and update a WABA's fields, list its templates.

The sender asks these whether a WABA may send marketing messages and which
templates it has; only the fields it reads, and the one flag an owner may set, are simulated.
"""

from __future__ import annotations

import urllib.parse

from starlette.requests import Request
from starlette.responses import Response

from services.simulator.http_io import (
    bearer_token,
    graph_error_response,
    json_body,
    json_response,
    simulator_of,
)
from services.simulator.rules import GraphError
from services.simulator.state import Simulator
from services.simulator.world import Waba


def _waba_or_error(sim: Simulator, request: Request) -> Waba | Response:
    if bearer_token(request) not in sim.world.access_tokens:
        return graph_error_response(
            GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token")
        )
    node_id = request.path_params["node_id"]
    waba = sim.world.waba(node_id)
    if waba is None:
        return graph_error_response(
            GraphError(
                400,
                100,
                f"Unsupported request. Object with ID '{node_id}' does not exist",
                subcode=33,
                type="GraphMethodException",
            )
        )
    return waba


async def waba_get(request: Request) -> Response:
    sim = simulator_of(request)
    waba = _waba_or_error(sim, request)
    if isinstance(waba, Response):
        return waba
    fields = [f for f in request.query_params.get("fields", "").split(",") if f]
    values = {
        "marketing_messages_onboarding_status": waba.onboarding_status,
        "disable_marketing_messages_on_cloud_api": waba.disable_marketing_messages_on_cloud_api,
        "owner_business_id": waba.business_id,
    }
    sim.counters["calls.waba_get"] += 1
    return json_response({**{f: values[f] for f in fields if f in values}, "id": waba.id})


async def waba_templates(request: Request) -> Response:
    """GET /{waba_id}/message_templates?name=...: the WABA's templates, as Graph lists them."""
    sim = simulator_of(request)
    waba = _waba_or_error(sim, request)
    if isinstance(waba, Response):
        return waba
    name = request.query_params.get("name")
    data = [
        {
            "name": t.name,
            "language": t.language,
            "category": t.category,
            "status": t.status,
            "id": t.id,
        }
        for t in sim.world.templates
        if t.waba_id == waba.id and (name is None or t.name == name)
    ]
    sim.counters["calls.template_lookup"] += 1
    return json_response({"data": data, "paging": {"cursors": {"before": "", "after": ""}}})


async def waba_post(request: Request) -> Response:
    sim = simulator_of(request)
    waba = _waba_or_error(sim, request)
    if isinstance(waba, Response):
        return waba
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await json_body(request) or {}
    else:
        # Graph also takes form-encoded parameters; parse them without a multipart library.
        body = dict(urllib.parse.parse_qsl((await request.body()).decode(errors="replace")))
    flag = body.get("disable_marketing_messages_on_cloud_api")
    if flag is None:
        return graph_error_response(
            GraphError(400, 100, "(#100) Invalid parameter", "nothing to update")
        )
    value = flag if isinstance(flag, bool) else str(flag).lower() == "true"
    sim.world = sim.world.with_waba(
        waba.model_copy(update={"disable_marketing_messages_on_cloud_api": value})
    )
    sim.counters["calls.waba_post"] += 1
    return json_response({"success": True})
