"""The sender's spans: opened only for a traced command, with the conventions in one place.

Whether a command is traced is decided once, when the handler takes it
(:func:`command_traced`), and kept in a context variable of the command's task:
``mmbus.tracing`` asks OpenTelemetry on every use, and with no SDK installed
that question (an environment look-up) was about a dozen times per send, more
CPU than anything else the sender did besides HTTP, for spans that were
dropped anyway. A command taken after an SDK is installed is traced.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.trace import SpanKind

from mmbus import tracing
from mmbus.contracts.commands import SendTemplateData
from services.sender.outcomes import Delivered, Fail, Result, Retry, Unknown
from services.sender.routing import Send

# None outside a command (a look-up, a dead letter written elsewhere): ask each time.
_traced: ContextVar[bool | None] = ContextVar("mmbus_sender_traced", default=None)
_OFF: AbstractContextManager[trace.Span] = nullcontext(trace.INVALID_SPAN)


def command_traced() -> bool:
    """Decide, for the command whose task this is, whether its spans are recorded."""
    traced = _sdk_installed()
    _traced.set(traced)
    return traced


# Asking OpenTelemetry (``trace.get_tracer_provider()``) first looks the environment up
# for a provider to load: a KeyError raised and caught on every call, with no SDK the
# whole cost of deciding, several microseconds a command. The provider it returns is
# the module global read here; the environment can only name one to load, and is read
# once, when this module loads. Should a release of OpenTelemetry keep the provider
# elsewhere, every command asks OpenTelemetry again.
_HAS_GLOBAL = hasattr(trace, "_TRACER_PROVIDER")
_FROM_ENVIRONMENT = OTEL_PYTHON_TRACER_PROVIDER in os.environ


def _sdk_installed() -> bool:
    if _HAS_GLOBAL and trace._TRACER_PROVIDER is None and not _FROM_ENVIRONMENT:
        return False  # what tracing.enabled() answers then, without the look-up
    return tracing.enabled()


def traced() -> bool:
    decided = _traced.get()
    return _sdk_installed() if decided is None else decided


def span(name: str, **options: Any) -> AbstractContextManager[trace.Span]:
    return tracing.span(name, **options) if traced() else _OFF


def attempt(number: int) -> AbstractContextManager[trace.Span]:
    # Untraced, not even the attributes' dict is made: this runs for every send.
    if not traced():
        return _OFF
    return tracing.span("send.attempt", attributes={"mmbus.attempt": number})


def inject(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return tracing.inject(headers) if traced() else headers


def process(headers: Sequence[tuple[str, bytes]] | None, offset: int, command_id: str) -> Any:
    """The command's consumer span, continuing the trace its record carries."""
    return tracing.span(
        "send.template process",
        context=tracing.extract(headers),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.kafka.offset": offset,
            "mmbus.command_id": command_id,
        },
    )


def outcome(event_type: str, *, reason: str | None = None) -> None:
    """The command's result on its span (the current one is its process span or a child)."""
    if not traced():
        return
    span = trace.get_current_span()
    span.set_attribute("mmbus.outcome", event_type)
    if reason is not None:
        span.set_attribute("mmbus.reason", reason)


def routed(endpoint: str) -> None:
    if traced():
        trace.get_current_span().set_attribute("mmbus.route", endpoint)


def http_call(data: SendTemplateData, plan: Send) -> AbstractContextManager[trace.Span]:
    if not traced():
        return _OFF
    # HTTP client semantic conventions; the URL names the endpoint, never the token.
    return tracing.span(
        "POST",
        kind=SpanKind.CLIENT,
        attributes={
            "http.request.method": "POST",
            "server.address": data.provider,
            "url.template": f"/{{phone_number_id}}/{plan.endpoint}",
            "mmbus.endpoint": plan.endpoint,
        },
    )


def record_answer(span: trace.Span, result: Result) -> None:
    if not span.is_recording():
        return
    status = result.http_status if isinstance(result, Delivered) else None
    if isinstance(result, Retry | Fail):
        status = result.error.http_status
        if result.error.code is not None:
            span.set_attribute("mmbus.error_code", result.error.code)
        span.set_status(trace.StatusCode.ERROR)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if isinstance(result, Unknown):
        span.set_attribute("error.type", result.cause)
        span.set_status(trace.StatusCode.ERROR)
