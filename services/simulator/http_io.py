"""What every simulator handler reads from a request and how it answers.

Shared by the Graph API, 360dialog and admin handlers so that a malformed body,
a credential or an error answers the same way on every endpoint.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from services.simulator.faults import GraphFault
from services.simulator.rules import GraphError
from services.simulator.state import Simulator


def simulator_of(request: Request) -> Simulator:
    sim: Simulator = request.app.state.sim
    return sim


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        # Handed on as a value rather than raised: the rules answer it as Meta does.
        return {"__invalid_json__": True}


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def new_fbtrace_id() -> str:
    return secrets.token_urlsafe(9)


def graph_error_body(error: GraphError | GraphFault, fbtrace_id: str) -> dict[str, Any]:
    """Graph's ``{"error": ...}`` body, as Meta shapes it for a failed call."""
    if isinstance(error, GraphFault):
        # A fault is injected by code alone, so it answers with Graph's default type.
        return {"error": _error_fields(error.message, "OAuthException", error.code, fbtrace_id)}
    body = _error_fields(error.message, error.type, error.code, fbtrace_id)
    if error.details:
        body["error_data"] = {"messaging_product": "whatsapp", "details": error.details}
    if error.subcode is not None:
        body["error_subcode"] = error.subcode
    return {"error": body}


def graph_error_response(error: GraphError | GraphFault) -> Response:
    return json_response(graph_error_body(error, new_fbtrace_id()), error.http_status)


def _error_fields(message: str, type_: str, code: int, fbtrace_id: str) -> dict[str, Any]:
    return {"message": message, "type": type_, "code": code, "fbtrace_id": fbtrace_id}
