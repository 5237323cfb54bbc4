"""The admin API under ``/_admin``: how tests, the demo and the benchmarks steer the simulator.

It changes the world, injects faults, sets webhook behaviour, plays a user or
Meta (onboarding, preferences, template reviews, inbound messages), and shows
what the simulated Graph API was asked and what it did. Its answers are plain
JSON, not Graph's shapes: no client of Meta ever sees them.
"""

from __future__ import annotations

import time

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from services.simulator import webhooks
from services.simulator.behaviour import Behaviour
from services.simulator.faults import FaultPlan
from services.simulator.http_io import json_body, json_response, simulator_of
from services.simulator.inbound import InboundRequest, inbound_webhook
from services.simulator.world import Template, World


def _invalid(exc: ValidationError) -> Response:
    return json_response(
        {
            "error": "invalid request",
            "details": exc.errors(include_url=False, include_context=False),
        },
        422,
    )


async def admin_health(request: Request) -> Response:
    return json_response(
        {"status": "ok", "pending_webhooks": simulator_of(request).dispatcher.pending()}
    )


async def admin_world(request: Request) -> Response:
    sim = simulator_of(request)
    if request.method == "PUT":
        try:
            sim.world = World.model_validate(await json_body(request) or {})
        except ValidationError as exc:
            return _invalid(exc)
        sim.reset_limits()
    return json_response(sim.world.model_dump(mode="json"))


async def admin_onboard(request: Request) -> Response:
    """Sign the MM API terms for the portfolio owning this WABA: every WABA in it is onboarded."""
    sim = simulator_of(request)
    waba = sim.world.waba(request.path_params["waba_id"])
    if waba is None:
        return json_response(
            {"error": f"no WABA {request.path_params['waba_id']} in the world"}, 404
        )
    sim.world = sim.world.with_onboarded(waba.business_id)
    now = int(time.time())
    for each in sim.world.wabas_of(waba.business_id):
        sim.emit(
            webhooks.terms_signed(business_id=each.business_id, waba_id=each.id, timestamp=now),
            "account_update",
        )
    return json_response({"onboarded": [w.id for w in sim.world.wabas_of(waba.business_id)]})


async def admin_preference(request: Request) -> Response:
    sim = simulator_of(request)
    body = await json_body(request) or {}
    number = sim.world.number(str(body.get("phone_number_id", "")))
    if number is None or not isinstance(body.get("stop"), bool):
        return json_response(
            {"error": "needs phone_number_id of a known number and stop: true|false"}, 422
        )
    wa_id = request.path_params["wa_id"]
    sim.world = sim.world.with_preference(wa_id, body["stop"])
    sim.emit(
        webhooks.user_preference(
            waba_id=number.waba_id,
            phone_number_id=number.id,
            display_phone_number=number.display_phone_number,
            wa_id=wa_id,
            stop=body["stop"],
            timestamp=int(time.time()),
            user_id=webhooks.bsuid_of(wa_id, number.waba_id),
        ),
        "user_preferences",
    )
    return json_response(
        {"wa_id": wa_id, "stopped_marketing": wa_id in sim.world.stopped_marketing}
    )


async def admin_template(request: Request) -> Response:
    sim = simulator_of(request)
    try:
        template = Template.model_validate(await json_body(request) or {})
    except ValidationError as exc:
        return _invalid(exc)
    if sim.world.waba(template.waba_id) is None:
        return json_response({"error": f"no WABA {template.waba_id} in the world"}, 404)
    previous = sim.world.template(template.waba_id, template.name, template.language)
    sim.world = sim.world.with_template(template)
    if previous is None or previous.status != template.status:
        sim.emit(
            webhooks.template_status(
                waba_id=template.waba_id,
                template_id=template.id
                or str(abs(hash((template.name, template.language))) % 10**15),
                name=template.name,
                language=template.language,
                event=template.status,
                timestamp=int(time.time()),
                category=template.category,
            ),
            "template_status",
        )
    return json_response(template.model_dump(mode="json"))


async def admin_inbound(request: Request) -> Response:
    sim = simulator_of(request)
    try:
        inbound = InboundRequest.model_validate(await json_body(request) or {})
    except ValidationError as exc:
        return _invalid(exc)
    payload = inbound_webhook(sim.world, inbound, int(time.time()))
    if payload is None:
        return json_response({"error": f"no number {inbound.phone_number_id} in the world"}, 404)
    sim.emit(payload, "inbound")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    return json_response({"wamid": message["id"]})


async def admin_faults(request: Request) -> Response:
    sim = simulator_of(request)
    if request.method == "PUT":
        try:
            sim.faults = FaultPlan.model_validate(await json_body(request) or {})
        except ValidationError as exc:
            return _invalid(exc)
        sim.burst_left = sim.faults.burst_5xx
    return json_response({**sim.faults.model_dump(mode="json"), "burst_left": sim.burst_left})


async def admin_behaviour(request: Request) -> Response:
    sim = simulator_of(request)
    if request.method == "PUT":
        try:
            sim.behaviour = Behaviour.model_validate(await json_body(request) or {})
        except ValidationError as exc:
            return _invalid(exc)
    return json_response(sim.behaviour.model_dump(mode="json"))


async def admin_calls(request: Request) -> Response:
    sim = simulator_of(request)
    q = request.query_params
    calls = [orjson.loads(c) for c in sim.calls]
    if "endpoint" in q:
        calls = [c for c in calls if c["endpoint"] == q["endpoint"]]
    if "outcome" in q:
        calls = [c for c in calls if c["outcome"] == q["outcome"]]
    after = int(q.get("after_seq", 0))
    limit = int(q.get("limit", 1000))
    page = [c for c in calls if c["seq"] > after][:limit]
    return json_response({"calls": page, "total": len(calls)})


async def admin_messages(request: Request) -> Response:
    messages = simulator_of(request).messages.values()
    return json_response({"messages": [orjson.loads(m) for m in messages]})


async def admin_counters(request: Request) -> Response:
    sim = simulator_of(request)
    return json_response(
        {"counters": dict(sim.counters), "pending_webhooks": sim.dispatcher.pending()}
    )


async def admin_webhooks(request: Request) -> Response:
    deliveries = simulator_of(request).dispatcher.deliveries
    return json_response({"deliveries": [d.summary() for d in deliveries]})


async def admin_reset(request: Request) -> Response:
    simulator_of(request).reset()
    return json_response({"reset": True})
