"""Sustained sends per second of one sender process against the simulator.

    make bench-sender        (or: python -m bench.sender --commands 6000)

For each API latency (0 ms and 50 ms, injected by the simulator) it runs, on the
same broker and the same simulator, in this order:

- **raw**: a minimal aiokafka consume -> HTTP POST -> aiokafka produce loop with
  the same concurrency and none of the features (no decoding, routing, pacing,
  durable attempt, ledger, per-recipient order), once over httpx (the baseline
  the sender is held to) and once over aiohttp (the sender's default client),
  then over aiohttp with one more acknowledged produce before each POST (the
  sender's durable attempt), to show what that requirement alone costs;
- **naive**: a FastStream handler that awaits each call in turn;
- **mmbus**: the real sender (`services.sender`), all guarantees on, with its
  default HTTP client (aiohttp) and with httpx (HTTP/2 capable).

Ratios are printed against both raw loops: against raw httpx, and against the
raw loop that uses the same HTTP client as the row.

Each works through a backlog of the same commands (5 numbers, distinct
recipients) and reports sends per second, the ratio to raw, and p50/p99 of
command-to-result latency: from when the process read the command to when its
result event was acknowledged by Kafka. The simulator runs in its own process;
the broker is ``KAFKA_BOOTSTRAP_SERVERS`` or the project's local broker.

It also prints the CPU time this process spent per send over the timed window
and what that implies with one whole core (1 / CPU per send): on a machine whose
cores are shared with the broker and the simulator, sends/s measures the share of
CPU the loop got, and the ceiling says what the loop itself costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.harness import run_loop, serve
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.topics import Stream, topic_name
from mmbus.publisher import SendCommandPublisher, send_template
from services.common.kafka_admin import ensure_project_topics
from services.common.ports import free_port
from services.common.settings import CommonSettings
from services.sender.graph import GraphClient
from services.sender.ledger import TERMINAL_TYPES
from services.sender.runner import Sender
from services.sender.settings import SenderSettings

HttpKind = Literal["aiohttp", "httpx"]

WABA = "102290129340398"
NUMBERS = [f"1065403522429{i:02d}" for i in range(5)]
CONCURRENCY = 512


@dataclass(frozen=True)
class Run:
    name: str
    sends: int
    seconds: float
    latencies_ms: list[float]
    http: HttpKind = "httpx"
    # CPU this process spent over the timed window (the broker and the simulator run
    # in their own processes and are not counted).
    cpu_seconds: float = float("nan")
    # A raw loop the ratios are taken against (one per HTTP client).
    baseline: bool = False

    @property
    def rate(self) -> float:
        return self.sends / self.seconds

    @property
    def cpu_ms_per_send(self) -> float:
        return self.cpu_seconds / self.sends * 1000 if self.sends else float("nan")

    @property
    def ceiling(self) -> float:
        """Sends/s this loop could do with one whole core to itself: 1 / CPU per send."""
        return 1000 / self.cpu_ms_per_send

    def pct(self, p: int) -> float:
        if len(self.latencies_ms) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]


def world(directory: Path) -> Path:
    data = {
        "portfolios": [{"id": "1"}],
        "wabas": [{"id": WABA, "business_id": "1", "onboarding_status": "ONBOARDED"}],
        "phone_numbers": [
            {
                "id": n,
                "waba_id": WABA,
                "display_phone_number": "15550001111",
                "throughput_per_s": 1000,
            }
            for n in NUMBERS
        ],
        "templates": [
            {"waba_id": WABA, "name": "spring_sale", "language": "en_US", "category": "MARKETING"}
        ],
        "pair_limit_s": 0.0,
    }
    path = directory / "world.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def commands(n: int) -> list[SendTemplate]:
    return [
        send_template(
            waba_id=WABA,
            phone_number_id=NUMBERS[i % len(NUMBERS)],
            to=f"447{700000000 + i}",
            template_name="spring_sale",
            language="en_US",
            category="MARKETING",
            source="bench",
        )
        for i in range(n)
    ]


async def prepare(settings: CommonSettings, batch: list[SendTemplate]) -> None:
    await ensure_project_topics(settings)
    async with SendCommandPublisher.from_settings(settings) as publisher:
        await publisher.publish_many(batch)


def fresh(base: CommonSettings, name: str) -> CommonSettings:
    return base.model_copy(update={"topic_prefix": f"bench-{name}-{uuid.uuid4().hex[:6]}."})


def minimal_body(data: dict[str, Any]) -> dict[str, Any]:
    """What the baselines send: the template call, with none of the sender's options."""
    return {
        "messaging_product": "whatsapp",
        "to": data["to"],
        "type": "template",
        "template": {"name": data["template"]["name"], "language": data["template"]["language"]},
    }


# ---------------------------------------------------------------- raw baseline
async def run_raw(
    settings: CommonSettings, sim: str, n: int, http: HttpKind, *, attempt_first: bool = False
) -> Run:
    options = settings.kafka_client_options()
    consumer = AIOKafkaConsumer(
        topic_name(Stream.SEND_COMMANDS, settings.topic_prefix),
        group_id=f"{settings.topic_prefix}raw",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
        **options,
    )
    producer = AIOKafkaProducer(
        acks="all", enable_idempotence=True, linger_ms=2, max_batch_size=1024 * 1024, **options
    )
    graph = GraphClient(_sender_settings(settings, sim, http))
    results = topic_name(Stream.SEND_EVENTS, settings.topic_prefix)
    await consumer.start()
    await producer.start()
    slots = asyncio.Semaphore(CONCURRENCY)
    latencies: list[float] = []
    done = 0
    finished = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def one(value: bytes) -> None:
        nonlocal done
        picked = time.perf_counter()
        data = orjson.loads(value)["data"]
        body = minimal_body(data)
        if attempt_first:
            await (await producer.send(results, value=b'{"attempt":"ok"}'))
        await graph.send("meta", data["phone_number_id"], "marketing_messages", body)
        await (await producer.send(results, value=b'{"result":"ok"}'))
        latencies.append((time.perf_counter() - picked) * 1000)
        done += 1
        slots.release()
        if done == n:
            finished.set()

    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        while not finished.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    await slots.acquire()
                    task = asyncio.create_task(one(record.value or b"{}"))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await consumer.stop()
        await producer.stop()
        await graph.aclose()
    name = f"raw aiokafka+{http}" + (" +attempt" if attempt_first else "")
    return Run(name, done, elapsed, latencies, http, cpu, baseline=not attempt_first)


# -------------------------------------------------------------- naive handler
async def run_naive(settings: CommonSettings, sim: str, n: int, deadline_s: float) -> Run:
    from faststream.kafka import KafkaBroker

    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
    client = httpx.AsyncClient()
    results = topic_name(Stream.SEND_EVENTS, settings.topic_prefix)
    latencies: list[float] = []
    finished = asyncio.Event()

    @broker.subscriber(
        topic_name(Stream.SEND_COMMANDS, settings.topic_prefix),
        group_id=f"{settings.topic_prefix}naive",
        auto_offset_reset="earliest",
    )
    async def handle(body: dict[str, Any]) -> None:
        picked = time.perf_counter()
        data = body["data"]
        await client.post(
            f"{sim}/v23.0/{data['phone_number_id']}/marketing_messages",
            headers={"Authorization": "Bearer sim-token"},
            json=minimal_body(data),
        )
        await broker.publish({"result": "ok"}, topic=results)
        latencies.append((time.perf_counter() - picked) * 1000)
        if len(latencies) == n:
            finished.set()

    await broker.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    # A naive handler is slow by design; it gets a fixed time, not the whole backlog.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished.wait(), deadline_s)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await broker.stop()
    await client.aclose()
    return Run("naive FastStream handler", len(latencies), elapsed, latencies, "httpx", cpu)


# ---------------------------------------------------------------- mmbus sender
def _sender_settings(settings: CommonSettings, sim: str, http: HttpKind) -> SenderSettings:
    return SenderSettings.model_validate(
        {
            **settings.model_dump(),
            "meta_base_url": sim,
            "meta_access_token": "sim-token",
            "sender_group_id": f"{settings.topic_prefix}sender",
            "sender_rate_per_s": 1000,
            "sender_pair_window_s": 0,
            "sender_max_in_flight": CONCURRENCY,
            "sender_http_port": 0,
            "sender_http_client": http,
            "log_level": "WARNING",
        }
    )


async def run_mmbus(settings: CommonSettings, sim: str, n: int, http: HttpKind) -> Run:
    sender_settings = _sender_settings(settings, sim, http)
    graph = GraphClient(sender_settings)
    picked: dict[str, float] = {}
    latencies: list[float] = []
    finished = asyncio.Event()

    class Timing:
        """Command taken -> terminal event durable, through the sender's observer port."""

        def command_taken(self, record: Any) -> None:
            # The command id without a second full decode (that cost is not the sender's).
            picked[orjson.loads(record.value)["data"]["command_id"]] = time.perf_counter()

        def event_written(self, event: Any, command: Any) -> None:
            if event.type in TERMINAL_TYPES:
                start = picked.pop(event.data.command_id, None)
                if start is not None:
                    latencies.append((time.perf_counter() - start) * 1000)
                if len(latencies) == n:
                    finished.set()

    sender = Sender(sender_settings, graph, observer=Timing())
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    await sender.consuming.wait()
    started, cpu_started = time.perf_counter(), time.process_time()
    await finished.wait()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    stop.set()
    await task
    await graph.aclose()
    return Run(f"mmbus sender ({http})", len(latencies), elapsed, latencies, http, cpu)


# ----------------------------------------------------------------------- main
def _table(runs: list[Run]) -> str:
    raw = {r.http: r for r in runs if r.baseline}
    lines = [
        f"{'':30} {'sends/s':>8} {'vs raw httpx':>13} {'vs raw same client':>19} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'sends':>7} {'CPU ms/send':>12} {'1-core ceiling/s':>17}"
    ]
    for r in runs:
        lines.append(
            f"{r.name:30} {r.rate:8.0f} {r.rate / raw['httpx'].rate:13.2f} "
            f"{r.rate / raw[r.http].rate:19.2f} "
            f"{r.pct(50):8.1f} {r.pct(99):8.1f} {r.sends:7d} "
            f"{r.cpu_ms_per_send:12.2f} {r.ceiling:17.0f}"
        )
    return "\n".join(lines)


async def bench(bootstrap: str, n: int, latencies_ms: list[int], naive_s: float) -> None:
    base = CommonSettings(kafka_bootstrap_servers=bootstrap, partitions=6, log_level="WARNING")
    batch = commands(n)
    with tempfile.TemporaryDirectory() as tmp:
        seed = world(Path(tmp))
        for latency in latencies_ms:
            port = free_port()
            with serve(
                ["-m", "services.cli", "simulator", "--port", str(port), "--seed", str(seed)],
                port,
                "/_admin/health",
                env={"MMBUS_SIMULATOR_MAX_RECORDED_CALLS": "0", "MMBUS_LOG_LEVEL": "WARNING"},
            ) as sim:
                async with httpx.AsyncClient() as admin:
                    fixed = {"latency": {"distribution": "fixed", "ms": latency}}
                    await admin.put(f"{sim}/_admin/faults", json=fixed)
                runs: list[Run] = []
                variants: list[tuple[str, Callable[[CommonSettings], Awaitable[Run]]]] = [
                    ("raw-httpx", lambda s: run_raw(s, sim, n, "httpx")),
                    ("raw-aiohttp", lambda s: run_raw(s, sim, n, "aiohttp")),
                    (
                        "raw-aiohttp-attempt",
                        lambda s: run_raw(s, sim, n, "aiohttp", attempt_first=True),
                    ),
                    ("naive", lambda s: run_naive(s, sim, n, naive_s)),
                    ("mmbus-aiohttp", lambda s: run_mmbus(s, sim, n, "aiohttp")),
                    ("mmbus-httpx", lambda s: run_mmbus(s, sim, n, "httpx")),
                ]
                for name, run in variants:
                    settings = fresh(base, name)
                    await prepare(settings, batch)
                    runs.append(await run(settings))
            print(f"\nAPI latency {latency} ms, {n} commands, 5 numbers, concurrency {CONCURRENCY}")
            print(_table(runs))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=6000)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50])
    parser.add_argument("--naive-seconds", type=float, default=10.0)
    args = parser.parse_args()
    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from services.localkafka import broker

            bootstrap = broker.up("bench", free_ports=True).instance.bootstrap_servers
            stack.callback(broker.down, "bench", purge=True)
        run_loop(bench(bootstrap, args.commands, args.latency_ms, args.naive_seconds))


if __name__ == "__main__":
    main()
