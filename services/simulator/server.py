"""Run the simulator with uvicorn: in the foreground (CLI) or in a background thread (tests)."""

from __future__ import annotations

import uvicorn

from services.common.serving import ServeInThread
from services.simulator.app import create_app
from services.simulator.settings import SimulatorSettings
from services.simulator.world import World, load_world


def initial_world(settings: SimulatorSettings) -> World:
    return load_world(settings.seed_file) if settings.seed_file else World()


def make_server(settings: SimulatorSettings, world: World | None = None) -> uvicorn.Server:
    app = create_app(settings, world if world is not None else initial_world(settings))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


class SimulatorThread(ServeInThread):
    """The simulator on a free port in a thread of its own; stops when the block ends."""

    def __init__(self, settings: SimulatorSettings, world: World | None = None) -> None:
        app = create_app(settings, world if world is not None else initial_world(settings))
        super().__init__(app, host=settings.host)
        self.app = app
