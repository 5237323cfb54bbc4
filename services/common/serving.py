"""Serve an ASGI app with uvicorn in a background thread (tests, embedded use)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Generator
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp


class ServeInThread:
    """``with ServeInThread(app) as server: server.base_url``; stops when the block ends."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="auto",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="asgi-server", daemon=True)

    def _serve(self) -> None:
        asyncio.run(self.server.serve())

    @property
    def base_url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ServeInThread:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server inside a service's own event loop.

    The service owns SIGTERM/SIGINT (graceful shutdown of consumers first); uvicorn
    must not capture or re-raise them.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
