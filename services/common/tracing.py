"""Turning OpenTelemetry on for a service, from the standard ``OTEL_*`` variables.

Off unless configured: with neither ``OTEL_TRACES_EXPORTER`` (``otlp`` or
``console``) nor an ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, nothing is installed and
every span in the code is OpenTelemetry's no-op. When on, the SDK's own
variables apply (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_*``); spans leave in batches over
OTLP/HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter


def wanted_exporter(env: Mapping[str, str]) -> str | None:
    """Which exporter the variables ask for: ``otlp``, ``console``, or None (tracing off)."""
    chosen = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen in {"otlp", "console"}:
        return chosen
    if chosen == "none" or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return "otlp" if endpoint else None


def configure_tracing(service: str, env: Mapping[str, str] | None = None) -> TracerProvider | None:
    """Install a tracer provider for ``service`` if the variables ask for one; return it."""
    chosen = wanted_exporter(os.environ if env is None else env)
    if chosen is None:
        return None
    exporter: SpanExporter
    if chosen == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    variables = os.environ if env is None else env
    # OTEL_SERVICE_NAME, when set, names the service (Resource.create reads it).
    named = {} if variables.get("OTEL_SERVICE_NAME") else {"service.name": service}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider
