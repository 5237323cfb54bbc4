"""The simulator's ASGI app: its routes, its lifespan and the reset middleware around it.

Handlers live by surface: :mod:`send_api` (sends, Meta and 360dialog),
:mod:`waba_api` (WABA fields and templates), :mod:`admin_api` (``/_admin``); the
state they share is one :class:`~services.simulator.state.Simulator`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route

from services.simulator import admin_api, waba_api
from services.simulator.connection_reset import ConnectionResetMiddleware
from services.simulator.send_api import D360, META, send_handler
from services.simulator.settings import SimulatorSettings
from services.simulator.state import Simulator
from services.simulator.world import World

# Any Graph API version in the path: clients pin their own, and one behaviour serves them all.
VERSION = "{version:str}"


def create_app(settings: SimulatorSettings, world: World) -> ConnectionResetMiddleware:
    """The ASGI app; ``.app.state.sim`` is its state.

    The reset middleware wraps Starlette from the outside: inside, Starlette's own
    error middleware replaces the server's ``send`` and with it the transport.
    """
    sim = Simulator(settings, world)
    meta_send = send_handler(META)
    d360_send = send_handler(D360)
    routes = [
        Route("/_admin/health", admin_api.admin_health),
        Route("/_admin/world", admin_api.admin_world, methods=["GET", "PUT"]),
        Route("/_admin/wabas/{waba_id}/onboard", admin_api.admin_onboard, methods=["POST"]),
        Route("/_admin/users/{wa_id}/preference", admin_api.admin_preference, methods=["POST"]),
        Route("/_admin/templates", admin_api.admin_template, methods=["POST"]),
        Route("/_admin/inbound", admin_api.admin_inbound, methods=["POST"]),
        Route("/_admin/faults", admin_api.admin_faults, methods=["GET", "PUT"]),
        Route("/_admin/behaviour", admin_api.admin_behaviour, methods=["GET", "PUT"]),
        Route("/_admin/calls", admin_api.admin_calls),
        Route("/_admin/messages", admin_api.admin_messages),
        Route("/_admin/counters", admin_api.admin_counters),
        Route("/_admin/webhooks", admin_api.admin_webhooks),
        Route("/_admin/reset", admin_api.admin_reset, methods=["POST"]),
        Route("/360dialog/messages", d360_send, methods=["POST"]),
        Route("/360dialog/marketing_messages", d360_send, methods=["POST"]),
        Route(f"/{VERSION}/{{node_id:str}}/messages", meta_send, methods=["POST"]),
        Route(f"/{VERSION}/{{node_id:str}}/marketing_messages", meta_send, methods=["POST"]),
        Route(
            f"/{VERSION}/{{node_id:str}}/message_templates",
            waba_api.waba_templates,
            methods=["GET"],
        ),
        Route(f"/{VERSION}/{{node_id:str}}", waba_api.waba_get, methods=["GET"]),
        Route(f"/{VERSION}/{{node_id:str}}", waba_api.waba_post, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sim.dispatcher.start()
        yield
        await sim.dispatcher.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = sim
    return ConnectionResetMiddleware(app)
