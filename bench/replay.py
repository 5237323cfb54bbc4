"""Events per second rebuilt by a replay, into memory and into SQLite, beside raw consumption.

    make bench-replay        (or: python -m bench.replay --messages 20000)

Writes a campaign's log to a fresh set of topics (commands, attempts, results,
statuses with duplicates, wamid-only statuses, clicks), then in the same run:

- **raw**: a bare aiokafka consumer reading every record of the same topics
  from the beginning to the end, doing nothing with them (the baseline);
- **memory**: ``mmbus replay`` without a store: decode, fold, digest;
- **sqlite**: ``mmbus replay`` into a fresh SQLite file, rows and offsets in one
  transaction per batch.

Raw runs before and after the others; the baseline is their mean. The broker is
``KAFKA_BOOTSTRAP_SERVERS`` or the project's local broker.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.harness import run_loop
from mmbus.contracts.codec import encode
from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import topic_name
from services.common.kafka_admin import ensure_project_topics
from services.common.logging import configure_logging
from services.common.settings import CommonSettings
from services.projections.projection import choose, streams_for
from services.projections.replay import replay
from tests.projections.support import STREAM_OF, campaign


async def write_log(settings: CommonSettings, messages: int) -> int:
    await ensure_project_topics(settings)
    producer = AIOKafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        **settings.kafka_client_options(),
    )
    await producer.start()
    written = 0
    try:
        for start in range(1, messages + 1, 2000):
            events: list[Message] = campaign(min(2000, messages + 1 - start), first=start)
            futures = []
            for event in events:
                stream = STREAM_OF.get(event.type)
                topic = topic_name(stream, settings.topic_prefix) if stream else None
                topic = topic or f"{settings.topic_prefix}send.events"
                record = encode(event)
                futures.append(
                    await producer.send(
                        topic, value=record.value, key=record.key, headers=record.headers
                    )
                )
            for future in futures:
                await future
            written += len(events)
    finally:
        await producer.stop()
    return written


async def raw_consume(settings: CommonSettings) -> tuple[int, float]:
    topics = [topic_name(s, settings.topic_prefix) for s in streams_for(choose(None))]
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **settings.kafka_client_options(),
    )
    started = time.perf_counter()
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        left = {tp for tp, end in ends.items() if end > 0}
        count = 0
        while left:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                count += len(records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return count, time.perf_counter() - started


async def bench(bootstrap: str, messages: int) -> None:
    configure_logging("WARNING", "console")
    settings = CommonSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=f"bench-replay-{uuid.uuid4().hex[:8]}.",
        partitions=6,
        log_level="WARNING",
    )
    written = await write_log(settings, messages)
    print(f"log: {written:,} events for {messages:,} messages on 6 partitions per topic")
    raw1 = await raw_consume(settings)
    specs = choose(None)
    started = time.perf_counter()
    memory = await replay(settings, specs, store_url=None)
    memory_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        sqlite = await replay(settings, specs, store_url=f"sqlite:///{Path(tmp) / 'r.db'}")
        sqlite_s = time.perf_counter() - started
    raw2 = await raw_consume(settings)
    assert memory.digests == sqlite.digests, "memory and SQLite rebuilt the same state"
    raw_rate = (raw1[0] / raw1[1] + raw2[0] / raw2[1]) / 2
    rows = [
        ("raw aiokafka consumption (mean of 2)", raw1[0], raw_rate),
        ("mmbus replay into memory", memory.records_read, memory.records_read / memory_s),
        ("mmbus replay into SQLite", sqlite.records_read, sqlite.records_read / sqlite_s),
    ]
    print(f"{'':<40} {'events':>10} {'events/s':>12} {'ratio':>7}")
    for name, count, rate in rows:
        print(f"{name:<40} {count:>10,} {rate:>12,.0f} {rate / raw_rate:>7.2f}")
    print(f"digest (memory = SQLite): {memory.digests['all'][:16]}...")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    with ExitStack():
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from services.localkafka import broker

            bootstrap = broker.up("bench", free_ports=True).instance.bootstrap_servers
        run_loop(bench(bootstrap, args.messages))


if __name__ == "__main__":
    main()
