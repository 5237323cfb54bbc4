"""The send endpoints, ``/messages`` and ``/marketing_messages``, for Meta and for 360dialog.

Both providers answer a send the same way; they differ only in where the request
carries the phone number id and the credential, which a :class:`Provider` says.
One send: wait the injected latency, apply an injected fault or ask the rules,
record the call, answer like Meta.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from services.simulator.connection_reset import RESET_MARKER
from services.simulator.faults import (
    GraphFault,
    Http5xx,
    Reset,
    TimeoutAfterAccept,
    choose,
    latency_s,
)
from services.simulator.http_io import (
    bearer_token,
    graph_error_response,
    json_body,
    json_response,
    simulator_of,
)
from services.simulator.rules import GraphError, SendCall

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Provider:
    """Where one provider's send request carries what the rules need to know of the sender."""

    name: Literal["meta", "360dialog"]
    phone_number_id: Callable[[Request], str | None]
    credential: Callable[[Request], str | None]


def _node_id(request: Request) -> str:
    node_id: str = request.path_params["node_id"]
    return node_id


def _no_number(request: Request) -> None:
    # 360dialog's key stands for one number; the rules find it from the key.
    return None


def _d360_api_key(request: Request) -> str | None:
    return request.headers.get("d360-api-key")


META = Provider("meta", phone_number_id=_node_id, credential=bearer_token)
D360 = Provider("360dialog", phone_number_id=_no_number, credential=_d360_api_key)


def send_handler(provider: Provider) -> Handler:
    """The request handler for both send endpoints of ``provider``."""

    async def send(request: Request) -> Response:
        endpoint = request.url.path.rsplit("/", 1)[-1]
        call = SendCall(
            endpoint="marketing_messages" if endpoint == "marketing_messages" else "messages",
            provider=provider.name,
            phone_number_id=provider.phone_number_id(request),
            credential=provider.credential(request),
            body=await json_body(request),
        )
        return await answer_send(request, call)

    return send


async def answer_send(request: Request, call: SendCall) -> Response:
    sim = simulator_of(request)
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
        return graph_error_response(fault)

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
        return graph_error_response(outcome)

    wamid, status = sim.accept(call, outcome)
    sim.record(
        {
            **entry,
            "outcome": "accepted",
            "http_status": 200,
            "code": None,
            "wamid": wamid,
            "route": outcome.route,
            # Audits explain an ambiguous send by it: accepted, answered too late.
            "answer_delayed_s": fault.hang_s if isinstance(fault, TimeoutAfterAccept) else None,
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
