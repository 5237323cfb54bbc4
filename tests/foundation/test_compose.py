"""compose.yaml parses and wires every service to the broker's advertised listener."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# The services that talk to Kafka; the simulator stands in for Meta and does not.
KAFKA_CLIENTS = ("topics", "sender", "ingest", "projector", "demo")


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _listeners(value: str) -> dict[str, str]:
    return dict(item.split("://", 1) for item in value.split(","))


def test_compose_has_kafka_and_every_service() -> None:
    services = _compose()["services"]
    assert {"kafka", "simulator", *KAFKA_CLIENTS} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["simulator"]["command"][0] == "mmbus"
    for name in KAFKA_CLIENTS:
        assert services[name]["command"][0] == "mmbus"
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_kafka_is_kraft_combined_with_consistent_listeners() -> None:
    env = _compose()["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) == set(protocols)
    assert set(advertised) <= set(listeners)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    controller_port = listeners["CONTROLLER"].rsplit(":", 1)[1]
    assert (
        env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:{controller_port}"
    )


def test_services_bootstrap_to_an_advertised_listener() -> None:
    compose = _compose()
    advertised = _listeners(
        compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    internal = advertised[
        compose["services"]["kafka"]["environment"]["KAFKA_INTER_BROKER_LISTENER_NAME"]
    ]
    for name in KAFKA_CLIENTS:
        env = compose["services"][name]["environment"]
        assert env["MMBUS_KAFKA_BOOTSTRAP_SERVERS"] == internal
