"""Admin operations ride through a node's crash; an unreachable cluster fails at once."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    InvalidReplicationFactorError,
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    NotControllerError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)

from services.common.admin_session import transient, with_admin
from services.common.settings import CommonSettings


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (NodeNotReadyError("node 1"), True),
        (KafkaConnectionError("Connection at 127.0.0.1:1 closed"), True),
        (RequestTimedOutError(), True),
        (NotControllerError(), True),
        (TopicAuthorizationFailedError(), False),
        (InvalidReplicationFactorError(), False),
    ],
)
def test_which_errors_are_a_crash_and_which_an_answer(error: KafkaError, retried: bool) -> None:
    assert transient(error) is retried


async def test_a_node_lost_mid_operation_is_retried_with_a_fresh_client(
    kafka_settings: CommonSettings,
) -> None:
    clients: list[AIOKafkaAdminClient] = []

    async def operation(admin: AIOKafkaAdminClient) -> list[str]:
        clients.append(admin)
        if len(clients) == 1:
            raise NodeNotReadyError("the node this request went to died")
        topics: list[str] = await admin.list_topics()
        return topics

    topics = await with_admin(kafka_settings.kafka_client_options(), operation)
    assert isinstance(topics, list)
    assert len(clients) == 2
    assert clients[0] is not clients[1], "a fresh client, with fresh metadata"


async def test_an_answer_that_is_not_a_crash_is_raised_at_once(
    kafka_settings: CommonSettings,
) -> None:
    calls = 0

    async def operation(admin: AIOKafkaAdminClient) -> None:
        nonlocal calls
        calls += 1
        raise TopicAuthorizationFailedError()

    with pytest.raises(TopicAuthorizationFailedError):
        await with_admin(kafka_settings.kafka_client_options(), operation)
    assert calls == 1


async def test_an_unreachable_cluster_is_not_waited_for() -> None:
    async def operation(admin: AIOKafkaAdminClient) -> None:
        raise AssertionError("never reached")

    # The bootstrap failure itself is raised, not retried into a later, vaguer one.
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        await with_admin({"bootstrap_servers": "127.0.0.1:1"}, operation, patience_s=600)
