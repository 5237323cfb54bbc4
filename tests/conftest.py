from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from services.common.settings import CommonSettings
from tests.kafka_fixture import session_broker

KAFKA_FIXTURES = {"kafka_bootstrap", "kafka_settings"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that uses the broker is marked `kafka` whether or not its author
    # remembered, so `-m "not kafka"` always means "no broker needed".
    for item in items:
        if KAFKA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with session_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so tests never see each other's records."""
    return f"test-{uuid.uuid4().hex[:12]}."


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, topic_prefix: str) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, partitions=3
    )


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL server for the session (see tests/pg_fixture.py)."""
    from tests.pg_fixture import postgres_server

    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def postgres_database(postgres_dsn: str) -> str:
    """A database no other test uses, on the session's server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # name is ours: hex only
    return postgres_dsn.rsplit("/", 1)[0] + f"/{name}"
