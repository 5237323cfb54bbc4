"""W3C trace context in Kafka headers, as the CloudEvents distributed-tracing extension says.

The publisher starts (or continues) a trace for each command and writes its
``traceparent`` (and ``tracestate``) into the record's headers; the services
read it back to continue the same trace. Only OpenTelemetry's API is used here:
without an SDK configured by the application every span is a no-op and no
header is written, so tracing costs nothing until someone turns it on.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import context, propagate, trace

TRACE_HEADERS = ("traceparent", "tracestate")
tracer = trace.get_tracer("mmbus")


def inject(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers plus the current trace context (unchanged when no span is recording)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return headers
    kept = [(name, value) for name, value in headers if name not in TRACE_HEADERS]
    return kept + [(name, value.encode()) for name, value in carrier.items()]


def extract(headers: Sequence[tuple[str, bytes]] | None) -> context.Context:
    """The trace context a record carries (an empty context when it carries none)."""
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
