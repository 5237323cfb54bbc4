"""Ask a broker, as a Kafka client would, whether it answers and whom it sees."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress


@contextmanager
def quiet_aiokafka() -> Iterator[None]:
    """A probe expects refused connections while the broker boots; they are not news."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def _broker_ids(bootstrap: str, timeout_s: float) -> set[int] | None:
    from aiokafka import AIOKafkaClient

    # The bare client, not an admin client: its bootstrap asks these servers
    # themselves, so the answer is what this node sees, not whichever node
    # an admin request happened to reach.
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        client_id="mmbus-localkafka-probe",
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return {int(b.nodeId) for b in client.cluster.brokers()}
    except Exception:
        return None
    finally:
        # A failed close of a probe has nothing to report.
        with suppress(Exception):
            await client.close()


def metadata_ok(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when a Kafka client can fetch cluster metadata from ``bootstrap``."""
    return live_broker_ids(bootstrap, timeout_s) is not None


def live_broker_ids(bootstrap: str, timeout_s: float = 5.0) -> set[int] | None:
    """The ids of the brokers ``bootstrap`` reports in its metadata; None when it does not answer.

    KRaft leaves fenced brokers (a crashed node the controller gave up on, a
    restarted one still catching up) out of the metadata, so a node is listed
    only once it takes part in the cluster.
    """
    with quiet_aiokafka():
        return asyncio.run(_broker_ids(bootstrap, timeout_s))
