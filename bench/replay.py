"""Events per second rebuilt by a replay, per store and per worker count, beside raw consumption.

    make bench-replay        (or: python -m bench.replay --messages 20000)
    python -m bench.replay --messages 200000 --big   (the 10x log: memory only, peak RSS)

Writes a campaign's log to a fresh set of topics (commands, attempts, results,
statuses with duplicates, wamid-only statuses, clicks), sent from 16 numbers of
4 WABAs as a campaign at volume is (``bench/replay_log.py``: commands and send
events are keyed by phone number, so one number would put them all in one
partition), then in the same run:

- **raw**: a bare aiokafka consumer reading every record of the same topics
  from the beginning to the end, doing nothing with them (the baseline);
- **memory**, **SQLite**, **PostgreSQL**: ``mmbus replay`` with one worker
  (decode, fold, digest; rows and offsets loaded in one transaction);
- **memory, 2 workers**: the partitions claimed by that process and a forked
  worker as they go, statuses passed to the worker of their send side.

Each replay and each raw consumption runs in a process of its own, as ``mmbus
replay`` does (``bench/replay_run.py``: in one process, a replay ran slower
after another). The machine is shared (other tests, a chaos run): each figure is the best of
``ROUNDS`` runs, interleaved (raw before, between and after the replays;
memory, SQLite and two workers in turn each round), so a burst of someone
else's load is not taken for a difference between the configurations. Five
rounds, not three: on this two-core machine beside other work, best-of-three
figures of the same code moved by a fifth from one run to the next (two
workers most: they need both cores at once). Each
row also gives the CPU per event (the replay's process and its workers). The per-stage
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
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.harness import run_loop
from bench.replay_log import NUMBERS, WABAS, spread, write_log
from bench.replay_stages import Run, print_stages
from mmbus.contracts.codec import decode
from mmbus.contracts.topics import topic_name
from services.common.logging import configure_logging
from services.common.settings import CommonSettings
from services.projections.audit import AuditReport
from services.projections.projection import Projection, choose, streams_for
from services.projections.shard import Stages, state_out_of_gc

Record = tuple[bytes | None, list[tuple[str, bytes]]]


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
    with state_out_of_gc():
        started = time.process_time()
        events = [decode(value, headers, trusted=True) for value, headers in records]
        decoded = time.process_time()
        projection = Projection(choose(None), incremental=False)
        for event in events:
            if not hasattr(event, "reason"):
                projection.apply(event)
        return decoded - started, time.process_time() - decoded


async def in_own_process(settings: CommonSettings, *options: str) -> dict[str, Any]:
    """``bench.replay_run`` with ``options``: its JSON line."""
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "bench.replay_run",
            "--bootstrap",
            settings.kafka_bootstrap_servers,
            "--prefix",
            settings.topic_prefix,
            *options,
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.replay_run {' '.join(options)} failed:\n{done.stderr}")
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result


async def timed(name: str, settings: CommonSettings, *, workers: int, store_url: str | None) -> Run:
    """One replay in a process of its own (``bench.replay_run``: why)."""
    options = ["--workers", str(workers), *(["--store", store_url] if store_url else [])]
    out = await in_own_process(settings, *options)
    return Run(
        name, AuditReport(**out["report"]), out["seconds"], out["cpu"], Stages(**out["stages"])
    )


async def raw_run(settings: CommonSettings) -> tuple[int, float, float]:
    out = await in_own_process(settings, "--raw")
    return int(out["records"]), float(out["seconds"]), float(out["cpu"])


def bench_settings(bootstrap: str) -> CommonSettings:
    configure_logging("WARNING", "console")
    return CommonSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=f"bench-replay-{uuid.uuid4().hex[:8]}.",
        partitions=6,
        log_level="WARNING",
    )


ROUNDS = 5


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda run: run.seconds)


async def bench(bootstrap: str, messages: int, postgres_dsn: str | None = None) -> None:
    settings = bench_settings(bootstrap)
    written, where = await write_log(settings, messages)
    print(
        f"log: {written:,} events for {messages:,} messages from {NUMBERS} numbers of {WABAS} WABAs"
    )
    print(f"  records per topic: {spread(where)}")
    raws = [await raw_run(settings)]
    rounds: dict[str, list[Run]] = {}
    for _ in range(ROUNDS):
        for name, options in (
            ("mmbus replay into memory, 1 worker", {}),
            ("mmbus replay into SQLite, 1 worker", {"store_url": "sqlite"}),
            ("mmbus replay into memory, 2 workers", {"workers": 2}),
        ):
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{Path(tmp) / 'r.db'}" if options.get("store_url") else None
                workers = int(options.get("workers", 1))
                rounds.setdefault(name, []).append(
                    await timed(name, settings, store_url=url, workers=workers)
                )
        raws.append(await raw_run(settings))
    runs = [best(r) for r in rounds.values()]
    if postgres_dsn is not None:
        runs.append(
            await timed(
                "mmbus replay into PostgreSQL, 1 worker",
                settings,
                workers=1,
                store_url=postgres_dsn,
            )
        )
    records: list[Record] = []
    await raw_consume(settings, keep=records)  # for decode and fold apart, not timed
    decode_s, fold_s = decode_and_fold(records)  # last: it holds the whole log
    del records
    digests = {run.report.digests["all"] for group in rounds.values() for run in group}
    digests |= {run.report.digests["all"] for run in runs}
    assert len(digests) == 1, f"every replay rebuilt the same state: {digests}"
    raw_rate = max(n / seconds for n, seconds, _ in raws)
    raw_cpu = min(cpu_s / n for n, _, cpu_s in raws)
    print(f"best of {ROUNDS} (raw: of {len(raws)}); load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<40} {'events':>10} {'events/s':>10} {'ratio':>6} {'CPU µs/event':>13}")
    print(
        f"{'raw aiokafka consumption':<40} {raws[0][0]:>10,} {raw_rate:>10,.0f} "
        f"{1:>6.2f} {raw_cpu * 1e6:>13.1f}"
    )
    for run in runs:
        n = run.report.records_read
        rate = n / run.seconds
        print(
            f"{run.name:<40} {n:>10,} {rate:>10,.0f} {rate / raw_rate:>6.2f} "
            f"{run.cpu_s / n * 1e6:>13.1f}"
        )
    print_stages(runs, raw_rate, raw_cpu, decode_s, fold_s, written, postgres_dsn is not None)
    print(f"digest (memory = SQLite) and every other replay: {digests.pop()[:16]}...")


async def big(bootstrap: str, messages: int) -> None:
    """The large log: one replay into memory, as the command line runs it; its peak RSS."""
    settings = bench_settings(bootstrap)
    written, _ = await write_log(settings, messages)
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
            stack.callback(broker.down, "bench", purge=True)  # the broker stops with the run
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
