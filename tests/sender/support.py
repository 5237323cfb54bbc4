"""Running a sender against the real broker and the simulator, and reading what it did."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import SecretStr

from mmbus.contracts.callback import command_id_from_callback
from mmbus.contracts.codec import decode, encode
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import Stream, topic_name
from mmbus.publisher import SendCommandPublisher, send_template
from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings
from services.sender.graph import GraphClient
from services.sender.ledger import TERMINAL_TYPES
from services.sender.ledger_rebuild import rebuild_ledger
from services.sender.rebuilds import RebuildLedger
from services.sender.runner import Sender
from services.sender.settings import SenderSettings


def sender_settings(kafka: CommonSettings, simulator_url: str, **overrides: Any) -> SenderSettings:
    values: dict[str, Any] = {
        **kafka.model_dump(),
        "meta_base_url": simulator_url,
        "meta_access_token": SecretStr("sim-token"),
        "d360_base_url": f"{simulator_url}/360dialog",
        "sender_group_id": f"{kafka.topic_prefix}sender",
        "sender_backoff_base_s": 0.02,
        "sender_backoff_cap_s": 0.2,
        "sender_commit_interval_s": 0.05,
        "sender_http_port": 0,
        **overrides,
    }
    return SenderSettings.model_validate(values)


@asynccontextmanager
async def running_sender(
    settings: SenderSettings, rebuild: RebuildLedger = rebuild_ledger
) -> AsyncIterator[Sender]:
    await ensure_project_topics(settings)
    graph = GraphClient(settings)
    sender = Sender(settings, graph, rebuild=rebuild)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        consuming = asyncio.ensure_future(sender.consuming.wait())
        done, _ = await asyncio.wait(
            {consuming, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()  # it stopped before getting ready: raise why
        assert consuming in done, "the sender did not get ready within 60 s"
        yield sender
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 60)
        finally:
            await graph.aclose()


def command(
    number: str,
    to: str,
    template: str = "spring_sale",
    category: str | None = "MARKETING",
    **fields: Any,
) -> SendTemplate:
    return send_template(
        waba_id=fields.pop("waba_id", "102290129340398"),
        phone_number_id=number,
        to=to,
        template_name=template,
        language="en_US",
        category=category,
        source="tests",
        **fields,
    )


async def publish(settings: CommonSettings, commands: list[SendTemplate]) -> None:
    await ensure_project_topics(settings)
    async with SendCommandPublisher.from_settings(settings) as publisher:
        await publisher.publish_many(commands)


async def read_stream(
    settings: CommonSettings, stream: Stream, *, until: Any, deadline_s: float = 60
) -> list[Message]:
    """Every message of a stream from the beginning, until ``until(messages)`` holds."""
    consumer = AIOKafkaConsumer(
        topic_name(stream, settings.topic_prefix),
        auto_offset_reset="earliest",
        **settings.kafka_client_options(),
    )
    await consumer.start()
    out: list[Message] = []
    try:
        async with asyncio.timeout(deadline_s):
            while not until(out):
                out.extend(_decoded(await consumer.getmany(timeout_ms=200)))
    finally:
        await consumer.stop()
    return out


def _decoded(batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> list[Message]:
    out: list[Message] = []
    for records in batches.values():
        for record in records:
            message = decode(record.value, record.headers)
            assert isinstance(message, Message), message
            out.append(message)
    return out


async def read_to_end(settings: CommonSettings, stream: Stream) -> list[Message]:
    """Every message of a stream up to its current end offsets (read when nothing more
    is being written: the writer stopped or died)."""
    consumer = AIOKafkaConsumer(auto_offset_reset="earliest", **settings.kafka_client_options())
    await consumer.start()
    out: list[Message] = []
    try:
        topic = topic_name(stream, settings.topic_prefix)
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            out.extend(_decoded(await consumer.getmany(timeout_ms=200)))
    finally:
        await consumer.stop()
    return out


async def publish_events(settings: CommonSettings, stream: Stream, events: list[Message]) -> None:
    await ensure_project_topics(settings)
    producer = AIOKafkaProducer(
        acks="all", enable_idempotence=True, **settings.kafka_client_options()
    )
    await producer.start()
    try:
        for event in events:
            record = encode(event)
            await producer.send_and_wait(
                topic_name(stream, settings.topic_prefix),
                record.value,
                key=record.key,
                headers=record.headers,
            )
    finally:
        await producer.stop()


def terminal_by_command(events: list[Message]) -> Counter[str]:
    return Counter(
        e.data.command_id for e in events if e.type in TERMINAL_TYPES and e.data.command_id
    )


def terminals_cover(ids: set[str]) -> Any:
    return lambda events: ids <= set(terminal_by_command(events))


def simulator_sends(client: httpx.Client) -> Counter[str]:
    """How many times the simulator accepted a message for each command id."""
    messages = client.get("/_admin/messages").json()["messages"]
    return Counter(command_id_from_callback(m["callback_data"]) or "?" for m in messages)


def max_in_any_second(times: list[float]) -> int:
    """The most events inside any one-second window (sliding, closed on the left)."""
    times = sorted(times)
    best, left = 0, 0
    for right, t in enumerate(times):
        while t - times[left] >= 1.0:
            left += 1
        best = max(best, right - left + 1)
    return best


def calls_per_number(client: httpx.Client) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    after = 0
    while True:
        page = client.get("/_admin/calls", params={"after_seq": after, "limit": 5000}).json()[
            "calls"
        ]
        if not page:
            return out
        for call in page:
            out.setdefault(call["phone_number_id"], []).append(call)
        after = page[-1]["seq"]


def recipient_order(client: httpx.Client) -> dict[tuple[str, str], list[str]]:
    """Command ids per (number, recipient), in the order the simulator accepted them."""
    order: dict[tuple[str, str], list[str]] = {}
    for number, calls in calls_per_number(client).items():
        for call in calls:
            if call["outcome"] == "accepted":
                payload = call["payload"]
                cid = command_id_from_callback(payload.get("biz_opaque_callback_data")) or "?"
                order.setdefault((number, payload["to"]), []).append(cid)
    return order
