"""The loops ``bench.sender`` compares: the raw baselines, a naive handler, the real sender.

Each works through a backlog of the same commands and returns a :class:`Run`;
the timed window (and the CPU counted) starts once the loop is consuming. A
``window`` (:class:`bench.sender_stages.StageSampler`) may be given to sample
CPU per stage over exactly that window.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from mmbus.contracts import phone
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.topics import Stream, topic_name
from mmbus.publisher import SendCommandPublisher
from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings
from services.sender.graph import GraphClient
from services.sender.ledger import TERMINAL_TYPES
from services.sender.runner import Sender
from services.sender.settings import SenderSettings


class Window(Protocol):
    """Told when a loop's timed window starts and ends (a profiler)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


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
    settings: CommonSettings,
    sim: str,
    n: int,
    http: HttpKind,
    *,
    attempt_first: bool = False,
    window: Window | None = None,
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

    if window is not None:
        window.start()
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
        if window is not None:
            window.stop()
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


async def run_mmbus(
    settings: CommonSettings, sim: str, n: int, http: HttpKind, *, window: Window | None = None
) -> Run:
    sender_settings = _sender_settings(settings, sim, http)
    # The sender runs in its own process: numbers this process's publisher validated
    # while preparing the backlog must not be known to it.
    phone.forget()
    graph = GraphClient(sender_settings)
    picked: dict[tuple[int, int], float] = {}
    latencies: list[float] = []
    finished = asyncio.Event()

    class Timing:
        """Command taken -> terminal event durable, through the sender's observer port."""

        # Keyed by the command record's coordinates: no second decode of the value (a
        # cost of the measurement, not of the sender; the raw loops measure none).
        def command_taken(self, record: Any) -> None:
            picked[record.partition, record.offset] = time.perf_counter()

        def event_written(self, event: Any, command: Any) -> None:
            if event.type in TERMINAL_TYPES:
                start = picked.pop((command.partition, command.offset), None)
                if start is not None:
                    latencies.append((time.perf_counter() - start) * 1000)
                if len(latencies) == n:
                    finished.set()

    sender = Sender(sender_settings, graph, observer=Timing())
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    await sender.consuming.wait()
    if window is not None:
        window.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    await finished.wait()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if window is not None:
        window.stop()
    stop.set()
    await task
    await graph.aclose()
    return Run(f"mmbus sender ({http})", len(latencies), elapsed, latencies, http, cpu)
