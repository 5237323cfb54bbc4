"""Gathering a chaos run's history once it settled: the log, the simulator, the projection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from mmbus.contracts.codec import decode, header_attributes
from mmbus.contracts.envelope import Message
from mmbus.contracts.raw_events import WebhookReceived
from mmbus.contracts.topics import Stream, topic_name
from services.common.settings import CommonSettings
from services.projections.models import MAX_LIMIT

# The streams the normalizer writes to (everything derived from a raw webhook).
DERIVED = tuple(
    s for s in Stream if s not in (Stream.SEND_COMMANDS, Stream.SEND_EVENTS, Stream.RAW_WEBHOOKS)
)


async def read_all(
    settings: CommonSettings, streams: Iterable[Stream]
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of these streams up to their end offsets now (the writers stopped).

    Raises when the count read is not the count the offsets promise: a history with
    holes would be checked as if records were lost.
    """
    tps = [
        TopicPartition(topic_name(s, settings.topic_prefix), p)
        for s in streams
        for p in range(settings.partitions)
    ]
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **settings.kafka_client_options())
    await consumer.start()
    try:
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    out: list[ConsumerRecord[bytes, bytes]] = []
    # Done by what was returned, not by position(): the history must hold every record.
    upto = dict(begin)
    async with asyncio.timeout(300):
        while short := [tp for tp in tps if upto[tp] < end[tp]]:
            await _read_some(settings, short, upto, end, out)
    expected = sum(end[tp] - begin[tp] for tp in tps)
    # Offsets count transaction markers too; mmbus writes no transactions.
    if len(out) != expected:
        raise AssertionError(f"read {len(out)} records of {streams}, offsets say {expected}")
    return out


async def _read_some(
    settings: CommonSettings,
    tps: list[TopicPartition],
    upto: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
    out: list[ConsumerRecord[bytes, bytes]],
) -> None:
    """Read from ``upto`` on until nothing arrives for a while; the caller starts again
    with a fresh consumer (one that stalled after the cluster's leaders moved, now and
    then, never caught up on its own)."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **settings.kafka_client_options())
    await consumer.start()
    try:
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, upto[tp])
        idle = 0
        while idle < 20:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            idle = 0 if batches else idle + 1
            for tp, records in batches.items():
                out.extend(records)
                upto[tp] = records[-1].offset + 1
            if all(upto[tp] >= end[tp] for tp in tps):
                return
    finally:
        await consumer.stop()


def messages(records: list[ConsumerRecord[bytes, bytes]]) -> list[Message]:
    out = []
    for r in records:
        message = decode(r.value, r.headers)
        assert isinstance(message, Message), message
        out.append(message)
    return out


async def log_history(settings: CommonSettings) -> dict[str, Any]:
    send_events = messages(await read_all(settings, [Stream.SEND_EVENTS]))
    raw = [
        m
        for m in messages(await read_all(settings, [Stream.RAW_WEBHOOKS]))
        if isinstance(m, WebhookReceived)
    ]
    derived = {
        header_attributes(r.headers).get("ce_id", "") for r in await read_all(settings, DERIVED)
    }
    return {"send_events": send_events, "raw": raw, "derived_ids": frozenset(derived)}


def simulator_history(base_url: str) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, timeout=120) as sim:
        calls: list[dict[str, Any]] = []
        while True:
            after = calls[-1]["seq"] if calls else 0
            page = sim.get("/_admin/calls", params={"after_seq": after, "limit": 5000})
            found = page.json()["calls"]
            if not found:
                break
            calls += found
        return {
            "sim_messages": sim.get("/_admin/messages").json()["messages"],
            "sim_calls": calls,
            "deliveries": sim.get("/_admin/webhooks").json()["deliveries"],
        }


def projection_history(query_url: str, campaign_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=query_url, timeout=60) as api:
        projected: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, str | int] = {"campaign_id": campaign_id, "limit": MAX_LIMIT}
            if after:
                params["after"] = after
            page = api.get("/v1/messages", params=params).json()
            projected += page["items"]
            if not (after := page["next"]):
                break
        funnel = api.get(f"/v1/campaigns/{campaign_id}/funnel").json()["funnel"]
    return {"projected": projected, "funnel": funnel}
