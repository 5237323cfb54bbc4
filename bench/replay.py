"""Events per second rebuilt by a replay, per store and per worker count, beside raw consumption.

    make bench-replay        (or: python -m bench.replay --messages 20000)
    python -m bench.replay --messages 200000 --big   (the 10x log: memory only, peak RSS)

Writes a campaign's log to a fresh set of topics (commands, attempts, results,
statuses with duplicates, wamid-only statuses, clicks), then in the same run:

- **raw**: a bare aiokafka consumer reading every record of the same topics
  from the beginning to the end, doing nothing with them (the baseline);
- **memory**, **SQLite**, **PostgreSQL**: ``mmbus replay`` with one worker
  (decode, fold, digest; rows and offsets loaded in one transaction);
- **memory, 2 workers**: the partitions shared between this process and a forked
  worker, partial states joined.

Raw runs before and after the others; the baseline is their mean. Each row
also gives the CPU per event (this process and its workers). The per-stage
breakdown is CPU per event: fetch is the raw consumer's; decode and fold are
timed apart over the records the raw consumer read; the later stages come from
the replays themselves. The broker is ``KAFKA_BOOTSTRAP_SERVERS`` or the
project's local broker; PostgreSQL a throwaway server (``tests/pg_fixture.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.harness import run_loop
from mmbus.contracts.codec import decode, encode
from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import topic_name
from services.common.kafka_admin import ensure_project_topics
from services.common.logging import configure_logging
from services.common.settings import CommonSettings
from services.projections.audit import AuditReport
from services.projections.projection import Projection, choose, streams_for
from services.projections.replay import replay
from services.projections.shard import Stages, young_garbage_only
from tests.projections.support import STREAM_OF, campaign

Record = tuple[bytes | None, list[tuple[str, bytes]]]


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


def cpu() -> float:
    """CPU seconds of this process and of its finished workers."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


async def raw_consume(
    settings: CommonSettings, keep: list[Record] | None = None
) -> tuple[int, float, float]:
    """(records, wall seconds, CPU seconds); ``keep`` collects value and headers."""
    topics = [topic_name(s, settings.topic_prefix) for s in streams_for(choose(None))]
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **settings.kafka_client_options(),
    )
    started, cpu_started = time.perf_counter(), cpu()
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
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp, records in batch.items():
                count += len(records)
                if keep is not None:
                    keep.extend((r.value, list(r.headers)) for r in records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return count, time.perf_counter() - started, cpu() - cpu_started


def decode_and_fold(records: list[Record]) -> tuple[float, float]:
    """CPU seconds to decode every record, then to fold the decoded events."""
    with young_garbage_only():
        started = time.process_time()
        events = [decode(value, headers, trusted=True) for value, headers in records]
        decoded = time.process_time()
        projection = Projection(choose(None), incremental=False)
        for event in events:
            if not hasattr(event, "reason"):
                projection.apply(event)
        return decoded - started, time.process_time() - decoded


@dataclass
class Run:
    name: str
    report: AuditReport
    seconds: float
    cpu_s: float
    stages: Stages


async def timed(name: str, settings: CommonSettings, **options: object) -> Run:
    stages = Stages()
    started, cpu_started = time.perf_counter(), cpu()
    report = await replay(settings, choose(None), stages=stages, **options)  # type: ignore[arg-type]
    return Run(name, report, time.perf_counter() - started, cpu() - cpu_started, stages)


def bench_settings(bootstrap: str) -> CommonSettings:
    configure_logging("WARNING", "console")
    return CommonSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=f"bench-replay-{uuid.uuid4().hex[:8]}.",
        partitions=6,
        log_level="WARNING",
    )


async def bench(bootstrap: str, messages: int, postgres_dsn: str | None = None) -> None:
    settings = bench_settings(bootstrap)
    written = await write_log(settings, messages)
    print(f"log: {written:,} events for {messages:,} messages on 6 partitions per topic")
    raw1 = await raw_consume(settings)
    runs = [await timed("mmbus replay into memory, 1 worker", settings, store_url=None)]
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(
            await timed(
                "mmbus replay into SQLite, 1 worker",
                settings,
                store_url=f"sqlite:///{Path(tmp) / 'r.db'}",
            )
        )
    runs.append(
        await timed("mmbus replay into memory, 2 workers", settings, store_url=None, workers=2)
    )
    if postgres_dsn is not None:
        runs.append(
            await timed("mmbus replay into PostgreSQL, 1 worker", settings, store_url=postgres_dsn)
        )
    records: list[Record] = []
    raw2 = await raw_consume(settings, keep=records)
    decode_s, fold_s = decode_and_fold(records)  # last: it holds the whole log
    del records
    digests = {run.report.digests["all"] for run in runs}
    assert len(digests) == 1, f"every replay rebuilt the same state: {digests}"
    raw_rate = (raw1[0] / raw1[1] + raw2[0] / raw2[1]) / 2
    raw_cpu = (raw1[2] + raw2[2]) / (raw1[0] + raw2[0])
    print(f"{'':<40} {'events':>10} {'events/s':>10} {'ratio':>6} {'CPU µs/event':>13}")
    print(
        f"{'raw aiokafka consumption (mean of 2)':<40} {raw1[0]:>10,} {raw_rate:>10,.0f} "
        f"{1:>6.2f} {raw_cpu * 1e6:>13.1f}"
    )
    for run in runs:
        n = run.report.records_read
        rate = n / run.seconds
        print(
            f"{run.name:<40} {n:>10,} {rate:>10,.0f} {rate / raw_rate:>6.2f} "
            f"{run.cpu_s / n * 1e6:>13.1f}"
        )
    memory, sqlite, two = runs[0], runs[1], runs[2]
    one_rate = memory.report.records_read / memory.seconds
    print(
        f"SQLite / memory: {memory.seconds / sqlite.seconds:.2f}; "
        f"2 workers / 1 worker: {memory.seconds / two.seconds:.2f}"
    )
    one_fold, two_fold = memory.stages.wall["workers"], two.stages.wall["workers"]
    after = two.stages.seconds
    print(
        f"2 workers: folding {two_fold:.2f} s (1 worker: {one_fold:.2f} s, "
        f"{one_fold / two_fold:.2f}x), then reading the other's partial state "
        f"{after.get('read partials', 0.0):.2f} s, joining {after.get('join', 0.0):.2f} s, "
        f"deriving and fingerprinting "
        f"{after.get('aggregates', 0.0) + after.get('rows+digest', 0.0):.2f} s (CPU)"
    )
    n = memory.report.records_read
    stages = [
        ("fetch (raw consumer)", raw_cpu * n),
        ("decode (trusted)", decode_s * n / written),
        ("fold", fold_s * n / written),
        ("join of 2 partial states (2 workers)", two.stages.seconds.get("join", 0.0)),
        ("partial state file (2 workers, read)", two.stages.seconds.get("read partials", 0.0)),
        ("aggregates and click counts", memory.stages.seconds.get("aggregates", 0.0)),
        ("rows + digest", memory.stages.seconds.get("rows+digest", 0.0)),
        ("store load (SQLite)", sqlite.stages.seconds.get("store", 0.0)),
        ("stored digest check (SQLite)", sqlite.stages.seconds.get("verify", 0.0)),
    ]
    if postgres_dsn is not None:
        pg = runs[3]
        stages.append(("store load (PostgreSQL COPY)", pg.stages.seconds.get("store", 0.0)))
        stages.append(("stored digest check (PostgreSQL)", pg.stages.seconds.get("verify", 0.0)))
    print("CPU per stage, µs/event:")
    for name, seconds in stages:
        print(f"  {name:<42} {seconds / n * 1e6:>7.1f}")
    print(
        f"  {'replay loop (fetch + decode + fold)':<42} "
        f"{(memory.stages.fetch + memory.stages.fold) / n * 1e6:>7.1f}"
    )
    print(f"one worker: {one_rate / raw_rate:.2f} of raw")
    print(f"digest (memory = SQLite) and every other replay: {digests.pop()[:16]}...")


async def big(bootstrap: str, messages: int) -> None:
    """The large log: one replay into memory, as the command line runs it; its peak RSS."""
    settings = bench_settings(bootstrap)
    written = await write_log(settings, messages)
    print(f"log: {written:,} events for {messages:,} messages on 6 partitions per topic")
    raw = await raw_consume(settings)
    env = {
        **os.environ,
        "MMBUS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MMBUS_TOPIC_PREFIX": settings.topic_prefix,
    }
    started = time.perf_counter()
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "replay", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    read = int(done.stdout.split('"records_read":')[1].split(",")[0])
    print(f"raw aiokafka consumption: {raw[0] / raw[1]:,.0f} events/s")
    print(
        f"mmbus replay into memory: {read:,} events in {seconds:.0f} s "
        f"({read / seconds:,.0f} events/s), peak RSS {peak_mib:,.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--big", action="store_true", help="memory only, with peak RSS")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from services.localkafka import broker

            bootstrap = broker.up("bench", free_ports=True).instance.bootstrap_servers
        if args.big:
            run_loop(big(bootstrap, args.messages))
            return
        dsn = None
        if not args.no_postgres:
            from tests.pg_fixture import postgres_server

            dsn = stack.enter_context(postgres_server())
        run_loop(bench(bootstrap, args.messages, dsn))


if __name__ == "__main__":
    main()
