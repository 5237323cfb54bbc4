"""The simulator's HTTP surface: Graph API and 360dialog endpoints, and its admin API.

Handlers are thin: parse the request, ask the pure rules, apply any injected
fault, record the call, answer like Meta. State lives in :class:`Simulator`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import secrets
import socket
import struct
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from services.simulator import webhooks
from services.simulator.behaviour import Behaviour, plan
from services.simulator.dispatcher import Dispatcher
from services.simulator.faults import (
    FaultPlan,
    GraphFault,
    Http5xx,
    Reset,
    TimeoutAfterAccept,
    choose,
    latency_s,
)
from services.simulator.inbound import InboundRequest, inbound_webhook
from services.simulator.limits import Bucket
from services.simulator.rules import Accepted, GraphError, SendCall, admit, route
from services.simulator.settings import SimulatorSettings
from services.simulator.world import Template, Waba, World

RESET_MARKER = "x-simulator-reset"


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def graph_error_body(error: GraphError | GraphFault, fbtrace_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": error.message,
        "type": getattr(error, "type", "OAuthException"),
        "code": error.code,
        "fbtrace_id": fbtrace_id,
    }
    details = getattr(error, "details", None)
    if details:
        body["error_data"] = {"messaging_product": "whatsapp", "details": details}
    subcode = getattr(error, "subcode", None)
    if subcode is not None:
        body["error_subcode"] = subcode
    return {"error": body}


class Simulator:
    """All mutable state of one simulator process."""

    def __init__(self, settings: SimulatorSettings, world: World) -> None:
        self.settings = settings
        self.world = world
        self.buckets: dict[str, Bucket] = {}
        self.last_sent: dict[tuple[str, str], float] = {}
        self.faults = FaultPlan()
        self.burst_left = 0
        self.behaviour = Behaviour()
        self.rng = random.Random(settings.random_seed)
        # Kept as JSON bytes: millions of small dicts would make every GC pass long,
        # and a paused simulator bunches the calls it then records.
        self.calls: list[bytes] = []
        self.messages: dict[str, bytes] = {}
        self.counters: Counter[str] = Counter()
        self._call_seq = itertools.count(1)
        self._wamid_seq = itertools.count(1)
        self.dispatcher = Dispatcher(behaviour=lambda: self.behaviour, rng=self.rng)

    def decide(self, call: SendCall) -> Accepted | GraphError:
        candidate = route(self.world, call)
        if isinstance(candidate, GraphError):
            return candidate
        key = (candidate.accepted.phone_number_id, candidate.accepted.to)
        now = time.monotonic()
        outcome, self.buckets[key[0]] = admit(
            candidate,
            self.buckets.get(key[0]),
            self.last_sent.get(key),
            now,
            self.world.pair_limit_s,
        )
        if isinstance(outcome, Accepted):
            self.last_sent[key] = now
        return outcome

    def reset_limits(self) -> None:
        self.buckets.clear()
        self.last_sent.clear()

    # ------------------------------------------------------------ recording
    def record(self, entry: dict[str, Any]) -> None:
        entry["seq"] = next(self._call_seq)
        self.counters[f"calls.{entry['endpoint']}.{entry['outcome']}"] += 1
        if entry.get("code") is not None:
            self.counters[f"codes.{entry['code']}"] += 1
        if len(self.calls) < self.settings.max_recorded_calls:
            self.calls.append(orjson.dumps(entry))

    def new_wamid(self) -> str:
        return f"wamid.SIM{next(self._wamid_seq):012d}{secrets.token_hex(6).upper()}"

    # ------------------------------------------------------------- webhooks
    def _webhook_target(self, provider: str) -> tuple[str | None, dict[str, str]]:
        if provider == "360dialog":
            url = self.settings.d360_webhook_url or self.settings.webhook_url
            secret = self.settings.d360_webhook_secret
            headers = {"X-Mmbus-Provider-Secret": secret.get_secret_value()} if secret else {}
            return url, headers
        return self.settings.webhook_url, {}

    def emit(
        self, payload: dict[str, Any], kind: str, delay_s: float = 0.0, provider: str = "meta"
    ) -> None:
        url, headers = self._webhook_target(provider)
        if url is None:
            self.counters["webhooks.not_configured"] += 1
            return
        body = webhooks.encode(payload)
        headers = {
            **headers,
            webhooks.SIGNATURE_HEADER: webhooks.sign(
                body, self.settings.app_secret.get_secret_value()
            ),
        }
        self.dispatcher.schedule(
            url=url, payload=payload, kind=kind, delay_s=delay_s, secret_headers=headers
        )
        self.counters[f"webhooks.scheduled.{kind}"] += 1

    def accept(self, call: SendCall, accepted: Accepted) -> tuple[str, str]:
        wamid = self.new_wamid()
        held = (
            accepted.route == "marketing_messages"
            and self.rng.random() < self.behaviour.held_probability
        )
        status = "held_for_quality_assessment" if held else "accepted"
        self.messages[wamid] = orjson.dumps(
            {
                "wamid": wamid,
                "endpoint": call.endpoint,
                "provider": call.provider,
                "route": accepted.route,
                "pricing_category": accepted.pricing_category,
                "phone_number_id": accepted.phone_number_id,
                "waba_id": accepted.waba_id,
                "to": accepted.to,
                "template": accepted.template.name,
                "language": accepted.template.language,
                "category": accepted.template.category,
                "callback_data": accepted.callback_data,
                "message_status": status,
                "later_failure": accepted.later_failure.code if accepted.later_failure else None,
                "accepted_at": time.time(),
            }
        )
        number = self.world.number(accepted.phone_number_id)
        assert number is not None
        for planned in plan(
            accepted,
            wamid=wamid,
            number=number,
            epoch_s=int(time.time()),
            behaviour=self.behaviour,
            rng=self.rng,
        ):
            self.emit(planned.payload, planned.kind, planned.delay_s, provider=call.provider)
        return wamid, status


# ----------------------------------------------------------------- handlers
def _sim(request: Request) -> Simulator:
    sim: Simulator = request.app.state.sim
    return sim


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return {"__invalid_json__": True}


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


async def _send(request: Request, call: SendCall) -> Response:
    sim = _sim(request)
    fbtrace = secrets.token_urlsafe(9)
    delay = latency_s(sim.faults.latency, sim.rng.random())
    if delay > 0:
        await asyncio.sleep(delay)
    fault = choose(sim.faults, sim.rng.random(), sim.burst_left)
    entry: dict[str, Any] = {
        "at": time.time(),
        "endpoint": call.endpoint,
        "provider": call.provider,
        "phone_number_id": call.phone_number_id,
        "payload": call.body,
    }
    if isinstance(fault, Http5xx):
        sim.burst_left = max(0, sim.burst_left - 1)
        sim.record(
            {**entry, "outcome": "fault_http", "http_status": fault.http_status, "code": None}
        )
        return Response(b"<html>Service Unavailable</html>", status_code=fault.http_status)
    if isinstance(fault, Reset):
        sim.record({**entry, "outcome": "fault_reset", "code": None})
        return Response(b"", status_code=599, headers={RESET_MARKER: "1"})
    if isinstance(fault, GraphFault):
        sim.record(
            {
                **entry,
                "outcome": "fault_error",
                "http_status": fault.http_status,
                "code": fault.code,
            }
        )
        return json_response(graph_error_body(fault, fbtrace), fault.http_status)

    outcome = sim.decide(call)
    if isinstance(outcome, GraphError):
        sim.record(
            {
                **entry,
                "outcome": "rejected",
                "http_status": outcome.http_status,
                "code": outcome.code,
            }
        )
        return json_response(graph_error_body(outcome, fbtrace), outcome.http_status)

    wamid, status = sim.accept(call, outcome)
    sim.record(
        {
            **entry,
            "outcome": "accepted",
            "http_status": 200,
            "code": None,
            "wamid": wamid,
            "route": outcome.route,
        }
    )
    body = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": call.body.get("to"), "wa_id": outcome.to}],
        "messages": [{"id": wamid, "message_status": status}],
    }
    if isinstance(fault, TimeoutAfterAccept):
        # The message is accepted and its webhooks will come; the answer comes too late.
        sim.counters["faults.timeout_after_accept"] += 1
        await asyncio.sleep(fault.hang_s)
    return json_response(body)


async def meta_send(request: Request) -> Response:
    endpoint = request.url.path.rsplit("/", 1)[-1]
    call = SendCall(
        endpoint="marketing_messages" if endpoint == "marketing_messages" else "messages",
        provider="meta",
        phone_number_id=request.path_params["node_id"],
        credential=_bearer(request),
        body=await _body(request),
    )
    return await _send(request, call)


async def d360_send(request: Request) -> Response:
    endpoint = request.url.path.rsplit("/", 1)[-1]
    call = SendCall(
        endpoint="marketing_messages" if endpoint == "marketing_messages" else "messages",
        provider="360dialog",
        phone_number_id=None,
        credential=request.headers.get("d360-api-key"),
        body=await _body(request),
    )
    return await _send(request, call)


def _waba_or_error(sim: Simulator, request: Request) -> Waba | Response:
    if _bearer(request) not in sim.world.access_tokens:
        return json_response(
            graph_error_body(
                GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token"),
                secrets.token_urlsafe(9),
            ),
            401,
        )
    node_id = request.path_params["node_id"]
    waba = sim.world.waba(node_id)
    if waba is None:
        return json_response(
            graph_error_body(
                GraphError(
                    400,
                    100,
                    f"Unsupported request. Object with ID '{node_id}' does not exist",
                    subcode=33,
                    type="GraphMethodException",
                ),
                secrets.token_urlsafe(9),
            ),
            400,
        )
    return waba


async def waba_get(request: Request) -> Response:
    sim = _sim(request)
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
    sim = _sim(request)
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
    sim = _sim(request)
    waba = _waba_or_error(sim, request)
    if isinstance(waba, Response):
        return waba
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await _body(request) or {}
    else:
        # Graph also takes form-encoded parameters; parse them without a multipart library.
        body = dict(urllib.parse.parse_qsl((await request.body()).decode(errors="replace")))
    flag = body.get("disable_marketing_messages_on_cloud_api")
    if flag is None:
        return json_response(
            graph_error_body(
                GraphError(400, 100, "(#100) Invalid parameter", "nothing to update"),
                secrets.token_urlsafe(9),
            ),
            400,
        )
    value = flag if isinstance(flag, bool) else str(flag).lower() == "true"
    sim.world = sim.world.with_waba(
        waba.model_copy(update={"disable_marketing_messages_on_cloud_api": value})
    )
    sim.counters["calls.waba_post"] += 1
    return json_response({"success": True})


# -------------------------------------------------------------------- admin
def _invalid(exc: ValidationError) -> Response:
    return json_response(
        {
            "error": "invalid request",
            "details": exc.errors(include_url=False, include_context=False),
        },
        422,
    )


async def admin_health(request: Request) -> Response:
    return json_response({"status": "ok", "pending_webhooks": _sim(request).dispatcher.pending()})


async def admin_world(request: Request) -> Response:
    sim = _sim(request)
    if request.method == "PUT":
        try:
            sim.world = World.model_validate(await _body(request) or {})
        except ValidationError as exc:
            return _invalid(exc)
        sim.reset_limits()
    return json_response(sim.world.model_dump(mode="json"))


async def admin_onboard(request: Request) -> Response:
    """Sign the MM API terms for the portfolio owning this WABA: every WABA in it is onboarded."""
    sim = _sim(request)
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
    sim = _sim(request)
    body = await _body(request) or {}
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
    sim = _sim(request)
    try:
        template = Template.model_validate(await _body(request) or {})
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
    sim = _sim(request)
    try:
        inbound = InboundRequest.model_validate(await _body(request) or {})
    except ValidationError as exc:
        return _invalid(exc)
    payload = inbound_webhook(sim.world, inbound, int(time.time()))
    if payload is None:
        return json_response({"error": f"no number {inbound.phone_number_id} in the world"}, 404)
    sim.emit(payload, "inbound")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    return json_response({"wamid": message["id"]})


async def admin_faults(request: Request) -> Response:
    sim = _sim(request)
    if request.method == "PUT":
        try:
            sim.faults = FaultPlan.model_validate(await _body(request) or {})
        except ValidationError as exc:
            return _invalid(exc)
        sim.burst_left = sim.faults.burst_5xx
    return json_response({**sim.faults.model_dump(mode="json"), "burst_left": sim.burst_left})


async def admin_behaviour(request: Request) -> Response:
    sim = _sim(request)
    if request.method == "PUT":
        try:
            sim.behaviour = Behaviour.model_validate(await _body(request) or {})
        except ValidationError as exc:
            return _invalid(exc)
    return json_response(sim.behaviour.model_dump(mode="json"))


async def admin_calls(request: Request) -> Response:
    sim = _sim(request)
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
    return json_response({"messages": [orjson.loads(m) for m in _sim(request).messages.values()]})


async def admin_counters(request: Request) -> Response:
    sim = _sim(request)
    return json_response(
        {"counters": dict(sim.counters), "pending_webhooks": sim.dispatcher.pending()}
    )


async def admin_webhooks(request: Request) -> Response:
    return json_response({"deliveries": [d.summary() for d in _sim(request).dispatcher.deliveries]})


async def admin_reset(request: Request) -> Response:
    sim = _sim(request)
    sim.calls.clear()
    sim.messages.clear()
    sim.counters.clear()
    sim.reset_limits()
    sim.faults = FaultPlan()
    sim.burst_left = 0
    return json_response({"reset": True})


class ConnectionResetMiddleware:
    """Turns a response marked for reset into a TCP reset of the connection.

    The server's ``send`` callable belongs to the connection's request cycle,
    which holds the transport; with SO_LINGER 0 an abort sends RST, as a peer or
    load balancer dropping the connection would.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        aborted = False

        async def guarded(message: Message) -> None:
            nonlocal aborted
            if aborted:
                return  # the rest of a reset response has nowhere to go, by design
            if message["type"] == "http.response.start" and any(
                k.decode() == RESET_MARKER for k, _ in message.get("headers", [])
            ):
                transport = getattr(getattr(send, "__self__", None), "transport", None)
                if transport is not None:
                    sock = transport.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                    transport.abort()
                    # Swallow the body that follows: passed on, uvicorn would log an
                    # error with a traceback for every simulated reset.
                    aborted = True
                    return
                raise ConnectionResetError("simulated connection reset")
            await send(message)

        await self.app(scope, receive, guarded)


VERSION = "{version:str}"


def create_app(settings: SimulatorSettings, world: World) -> ConnectionResetMiddleware:
    """The ASGI app; ``.app.state.sim`` is its state.

    The reset middleware wraps Starlette from the outside: inside, Starlette's own
    error middleware replaces the server's ``send`` and with it the transport.
    """
    sim = Simulator(settings, world)
    routes = [
        Route("/_admin/health", admin_health),
        Route("/_admin/world", admin_world, methods=["GET", "PUT"]),
        Route("/_admin/wabas/{waba_id}/onboard", admin_onboard, methods=["POST"]),
        Route("/_admin/users/{wa_id}/preference", admin_preference, methods=["POST"]),
        Route("/_admin/templates", admin_template, methods=["POST"]),
        Route("/_admin/inbound", admin_inbound, methods=["POST"]),
        Route("/_admin/faults", admin_faults, methods=["GET", "PUT"]),
        Route("/_admin/behaviour", admin_behaviour, methods=["GET", "PUT"]),
        Route("/_admin/calls", admin_calls),
        Route("/_admin/messages", admin_messages),
        Route("/_admin/counters", admin_counters),
        Route("/_admin/webhooks", admin_webhooks),
        Route("/_admin/reset", admin_reset, methods=["POST"]),
        Route("/360dialog/messages", d360_send, methods=["POST"]),
        Route("/360dialog/marketing_messages", d360_send, methods=["POST"]),
        Route(f"/{VERSION}/{{node_id:str}}/messages", meta_send, methods=["POST"]),
        Route(f"/{VERSION}/{{node_id:str}}/marketing_messages", meta_send, methods=["POST"]),
        Route(f"/{VERSION}/{{node_id:str}}/message_templates", waba_templates, methods=["GET"]),
        Route(f"/{VERSION}/{{node_id:str}}", waba_get, methods=["GET"]),
        Route(f"/{VERSION}/{{node_id:str}}", waba_post, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sim.dispatcher.start()
        yield
        await sim.dispatcher.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = sim
    return ConnectionResetMiddleware(app)
