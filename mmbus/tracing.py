"""W3C trace context in Kafka headers, as the CloudEvents distributed-tracing extension says.

The publisher starts (or continues) a trace for each command and writes its
``traceparent`` (and ``tracestate``) into the record's headers; the services
read it back to continue the same trace. Only OpenTelemetry's API is used here:
without an SDK configured by the application every span is a no-op and no
header is written, so tracing costs nothing until someone turns it on.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import context, propagate, trace

TRACE_HEADERS = ("traceparent", "tracestate")
tracer = trace.get_tracer("mmbus")
# Reusable: entering it costs nothing and yields a span whose methods do nothing.
_OFF: AbstractContextManager[trace.Span] = nullcontext(trace.INVALID_SPAN)
_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def enabled() -> bool:
    """True once an application has installed an OpenTelemetry SDK (a real provider).

    Checked on every use, not at import: the services install theirs at start-up.
    Without one, even the API's no-op spans cost several microseconds each, which on
    the sender's path (five spans a command) would be paid for nothing.
    """
    return not isinstance(trace.get_tracer_provider(), _NO_SDK)


def span(name: str, **options: Any) -> AbstractContextManager[trace.Span]:
    """``tracer.start_as_current_span(name, ...)`` when tracing is on, else a free no-op."""
    if not enabled():
        return _OFF
    return tracer.start_as_current_span(name, **options)


def inject(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers plus the current trace context (unchanged when no span is recording)."""
    if not enabled():
        return headers
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return headers
    kept = [(name, value) for name, value in headers if name not in TRACE_HEADERS]
    return kept + [(name, value.encode()) for name, value in carrier.items()]


def extract(headers: Sequence[tuple[str, bytes]] | None) -> context.Context:
    """The trace context a record carries (an empty context when it carries none)."""
    if not enabled():
        return context.Context()
    carrier = {
        name: value.decode(errors="replace")
        for name, value in headers or ()
        if name in TRACE_HEADERS
    }
    return propagate.extract(carrier)


def link_to(headers: Sequence[tuple[str, bytes]] | None) -> trace.Link | None:
    """A span link to the trace a record carries, for work caused by it but not part of it."""
    span_context = trace.get_current_span(extract(headers)).get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None
