"""A simulated connection reset: a handler marks its response, the middleware drops the TCP link.

A handler cannot reset its own connection, since Starlette hides the transport from
it; it returns a response carrying :data:`RESET_MARKER` and this middleware, which
wraps the whole app, turns that response into a reset.
"""

from __future__ import annotations

import contextlib
import socket
import struct

from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

RESET_MARKER = "x-simulator-reset"


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
                    # A client that already gave up closed the socket (uvloop then
                    # has no descriptor for it): there is nothing left to reset.
                    with contextlib.suppress(OSError, ValueError):
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
