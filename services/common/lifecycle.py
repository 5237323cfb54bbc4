"""Graceful shutdown: SIGTERM and SIGINT ask a service to finish, never kill it mid-write."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from services.common.logging import get_logger

log = get_logger(__name__)

Main = Callable[[asyncio.Event], Awaitable[None]]


async def run_until_stopped(main: Main, *, grace_s: float = 30.0) -> None:
    """Run ``main(stop)`` until it returns; SIGTERM/SIGINT set ``stop``.

    ``main`` is expected to notice ``stop``, finish in-flight work (flush producers,
    commit offsets) and return. If it has not returned ``grace_s`` after the first
    signal, it is cancelled; a second signal cancels it at once.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.ensure_future(main(stop))

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("second signal, cancelling", signal=name)
            task.cancel()
            return
        log.info("shutdown requested", signal=name, grace_s=grace_s)
        stop.set()
        loop.call_later(grace_s, task.cancel)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await task
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run_service(main: Main, *, grace_s: float = 30.0) -> None:
    """Run a service until it stops, on uvloop when installed (uvicorn[standard] brings it).

    uvloop roughly halves the cost of the event loop's networking for the
    receiver, the Kafka clients and the HTTP client alike.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        asyncio.run(run_until_stopped(main, grace_s=grace_s))
        return
    uvloop.run(run_until_stopped(main, grace_s=grace_s))
