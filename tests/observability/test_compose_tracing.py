"""compose.yaml's tracing, checked statically: Jaeger in the observability profile, the
services that trace pointed at it only when the documented variable says so."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from services.common.tracing import wanted_exporter

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
# The services whose composition root calls services.common.tracing.configure_tracing.
TRACED = ("sender", "ingest", "projector")
# ${NAME}, ${NAME:-default}, ${NAME-default}: what compose substitutes in values.
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _container_env(service: dict[str, Any], host: dict[str, str]) -> dict[str, str]:
    """The service's environment as compose would give it, with ``host`` as the shell's."""

    def substitute(value: object) -> str:
        return INTERPOLATION.sub(lambda m: host.get(m.group(1)) or (m.group(2) or ""), str(value))

    return {key: substitute(value) for key, value in service.get("environment", {}).items()}


def _documented_endpoint() -> str:
    """The endpoint compose.yaml's comment tells users to set, with the profile."""
    found = re.search(
        r"MMBUS_OTLP_ENDPOINT=(\S+) docker compose --profile observability up", COMPOSE.read_text()
    )
    assert found is not None, "compose.yaml documents how to turn tracing on"
    return found.group(1)


def test_jaeger_runs_in_the_observability_profile_and_takes_otlp_from_other_containers() -> None:
    jaeger = _services()["jaeger"]
    assert jaeger["profiles"] == ["observability"], "optional: off by default"
    assert jaeger["image"].startswith("jaegertracing/jaeger:2.")
    # Jaeger v2's OTLP receivers listen on localhost unless told otherwise.
    assert "--set=receivers.otlp.protocols.http.endpoint=0.0.0.0:4318" in jaeger["command"]
    assert "16686:16686" in jaeger["ports"], "the UI is published"
    endpoint = urlparse(_documented_endpoint())
    assert (endpoint.scheme, endpoint.hostname, endpoint.port) == ("http", "jaeger", 4318)


def test_services_trace_to_jaeger_only_when_the_variable_is_set() -> None:
    services = _services()
    endpoint = _documented_endpoint()
    for name in TRACED:
        off = _container_env(services[name], {})
        on = _container_env(services[name], {"MMBUS_OTLP_ENDPOINT": endpoint})
        assert wanted_exporter(off) is None, f"{name} traces without being asked"
        assert wanted_exporter(on) == "otlp", name
        assert on["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint, name
    untraced = [name for name in services if name not in TRACED]
    for name in untraced:
        env = services[name].get("environment", {})
        assert not any(str(key).startswith("OTEL_") for key in env), f"{name} does not trace"
