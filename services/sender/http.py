"""The sender's HTTP clients: aiohttp (HTTP/1.1, the default) or httpx (HTTP/2 when offered).

Both answer one question the same way. When a call fails, could the request
have reached the server? Only a failed connect (DNS, refused, connect or pool
timeout) is "not sent" and safe to retry. Anything after the connection was
made is "sent": the API may have the message, so the command is reported
``send.indeterminate`` and never resent blindly. A read timeout keeps the kind
``ReadTimeout`` whichever client saw it.

Why two clients: per request, httpx spends about 5x the CPU of aiohttp (measured
on this project's CI machine against the simulator at 50 ms latency: 1,950 µs
vs 360 µs of client CPU per POST, 256 in flight; httpx over an aiohttp
transport still 880 µs). At thousands of sends per second that CPU is the
sender's ceiling, so aiohttp is the default. Set ``MMBUS_SENDER_HTTP_CLIENT=httpx``
for HTTP/2 (ALPN) multiplexing instead.
"""

from __future__ import annotations

import itertools
import ssl
from typing import Protocol

import aiohttp
import httpx

from services.sender.settings import SenderSettings

# Below the 5 s idle timeout of common servers (uvicorn's default, used by the
# simulator): a connection the server is about to close is not reused, so a
# send does not meet a connection closed under it (which would be ambiguous).
KEEPALIVE_S = 4.0


class TransportFailure(Exception):
    """The call did not produce an HTTP answer. ``sent``: the request may have reached the API."""

    def __init__(self, kind: str, *, sent: bool, detail: str = "") -> None:
        super().__init__(f"{kind}{': ' + detail if detail else ''}")
        self.kind = kind
        self.sent = sent


class HttpClient(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        *,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """The status and body, or :class:`TransportFailure`."""
        ...

    async def aclose(self) -> None: ...


class AiohttpClient:
    """One aiohttp session with a bounded keep-alive pool, opened inside the running loop."""

    def __init__(self, settings: SenderSettings, tls: ssl.SSLContext) -> None:
        self._settings = settings
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            s = self._settings
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=s.sender_http_connections,
                    keepalive_timeout=KEEPALIVE_S,
                    ssl=self._tls,
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    # Waiting for a pooled connection, then connecting.
                    connect=s.sender_read_timeout_s,
                    sock_connect=s.sender_connect_timeout_s,
                    sock_read=s.sender_read_timeout_s,
                ),
                auto_decompress=True,
                raise_for_status=False,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        *,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        session = self._open()
        try:
            async with session.request(
                method, url, data=body, headers=headers, params=params, allow_redirects=False
            ) as response:
                return response.status, await response.read()
        # Order matters: the connect timeout is also a ServerTimeoutError.
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise TransportFailure(type(exc).__name__, sent=False, detail=str(exc)) from exc
        except aiohttp.ServerTimeoutError as exc:
            raise TransportFailure("ReadTimeout", sent=True, detail=str(exc)) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TransportFailure(type(exc).__name__, sent=True, detail=str(exc)) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


# httpx errors raised before any byte of the request left: resending is safe.
_HTTPX_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


class HttpxClient:
    """A set of small httpx clients used in turn, HTTP/2 where the server offers it.

    One httpx client with hundreds of concurrent requests spends its time in its
    connection pool (measured: 91 req/s at 256 concurrent requests on one client,
    1,190 req/s over 64 clients of 4 connections).
    """

    def __init__(self, settings: SenderSettings, tls: ssl.SSLContext, *, shards: int = 64) -> None:
        per_shard = max(1, settings.sender_http_connections // shards)
        timeout = httpx.Timeout(
            connect=settings.sender_connect_timeout_s,
            read=settings.sender_read_timeout_s,
            write=settings.sender_connect_timeout_s,
            pool=settings.sender_read_timeout_s,
        )
        limits = httpx.Limits(
            max_connections=per_shard,
            max_keepalive_connections=per_shard,
            keepalive_expiry=KEEPALIVE_S,
        )
        self._clients = [
            httpx.AsyncClient(http2=True, timeout=timeout, limits=limits, verify=tls)
            for _ in range(shards)
        ]
        self._turn = itertools.cycle(self._clients)

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        *,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        try:
            response = await next(self._turn).request(
                method, url, content=body, headers=headers, params=params
            )
        except _HTTPX_NOT_SENT as exc:
            raise TransportFailure(type(exc).__name__, sent=False, detail=str(exc)) from exc
        except httpx.HTTPError as exc:
            raise TransportFailure(type(exc).__name__, sent=True, detail=str(exc)) from exc
        return response.status_code, response.content

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def http_client(settings: SenderSettings) -> HttpClient:
    tls = ssl.create_default_context()  # the CA bundle loaded once
    if settings.sender_http_client == "httpx":
        return HttpxClient(settings, tls)
    return AiohttpClient(settings, tls)
