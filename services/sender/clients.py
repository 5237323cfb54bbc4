"""The sender's two Kafka clients, configured for what the runner guarantees.

The producer writes every send event (idempotent, ``acks=all``: an event is
durable once acknowledged); the consumer reads commands in the sender's group
and never commits on its own (the runner commits the lowest unfinished offset
with the ledger checkpoint, :mod:`services.sender.commits`).
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.sender.settings import SenderSettings


def event_producer(settings: SenderSettings) -> AIOKafkaProducer:
    # Large batches: an idempotent producer has one request in flight per partition,
    # and 16 KB batches (the default) held only ~16 send events each.
    return AIOKafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=1024 * 1024,
        client_id="mmbus-sender",
        **settings.kafka_producer_options(),
    )


def command_consumer(settings: SenderSettings, topic: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        group_id=settings.sender_group_id,
        client_id="mmbus-sender",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        # aiokafka keeps one fetch per broker in flight and refetches a partition only
        # once its buffered records are all taken. A fetch for partitions with nothing
        # new waits at the broker for up to this long (aiokafka's default: 500 ms), and
        # a partition emptied meanwhile waits behind it: in `make bench-sender` the
        # sender had nothing in flight for a third of the run, between backlogs. 20 ms
        # costs an idle sender 50 small fetches a second per broker.
        fetch_max_wait_ms=settings.sender_fetch_max_wait_ms,
        session_timeout_ms=int(settings.sender_session_timeout_s * 1000),
        # aiokafka's default is the session timeout (10 s), shorter than a drain.
        rebalance_timeout_ms=int(settings.sender_rebalance_timeout_s * 1000),
        **settings.kafka_client_options(),
    )
