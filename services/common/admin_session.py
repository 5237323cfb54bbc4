"""One admin operation against a cluster that may lose a broker while it runs.

Admin requests go to one node (DescribeConfigs to any, CreateTopics to the
controller's choice): a node that dies mid-call fails that call with an error that
says nothing about the cluster (NodeNotReady, connection closed), while the two
other nodes answer. Such an error is retried, the whole operation with a fresh
client (fresh metadata), until a deadline. A cluster that cannot be reached at all
fails at once: a wrong address is not something waiting fixes, and the command
line says so in one line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError, NodeNotReadyError

from services.common.logging import get_logger

log = get_logger("mmbus.topics")

T = TypeVar("T")
# Long enough for a cluster to move leadership and its controller after a crash.
PATIENCE_S = 60.0


def transient(exc: KafkaError) -> bool:
    """An error a node's crash gives, or one Kafka itself marks as worth retrying."""
    return exc.retriable or isinstance(exc, KafkaConnectionError | NodeNotReadyError)


async def with_admin(
    client_options: dict[str, object],
    operation: Callable[[AIOKafkaAdminClient], Awaitable[T]],
    *,
    patience_s: float = PATIENCE_S,
) -> T:
    deadline = time.monotonic() + patience_s
    delay = 0.2
    while True:
        admin = AIOKafkaAdminClient(client_id="mmbus-admin", **client_options)
        await admin.start()  # unreachable: raises, not retried
        try:
            return await operation(admin)
        except KafkaError as exc:
            if not transient(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("kafka admin call failed; retrying", error=repr(exc), in_s=delay)
        finally:
            await admin.close()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
