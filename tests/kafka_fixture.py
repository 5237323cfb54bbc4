"""Where the tests' Kafka broker comes from, in order of preference.

1. ``KAFKA_BOOTSTRAP_SERVERS``: an existing cluster (CI with a service, a laptop broker).
2. testcontainers' Kafka container, when a Docker engine answers.
3. The project's own local KRaft broker (``services.localkafka``), on free ports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from services.localkafka import broker

TEST_BROKER_NAME = "pytest"
CONTAINER_IMAGE = "confluentinc/cp-kafka:8.0.0"  # Apache Kafka 4.0 in KRaft mode


def docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextmanager
def session_broker() -> Iterator[str]:
    explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if explicit:
        yield explicit
        return
    if docker_engine_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer(CONTAINER_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    result = broker.up(TEST_BROKER_NAME, free_ports=True)
    try:
        yield result.instance.bootstrap_servers
    finally:
        # Stop only a broker this session started; a reused one belongs to someone else.
        if not result.reused:
            broker.down(TEST_BROKER_NAME, purge=True)
