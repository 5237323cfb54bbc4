"""Rebuilding the ledger of newly assigned partitions from their send events.

A partition's next owner must know what its previous owner did before it
takes any command: it folds the co-partitioned send-event partition from the
checkpoint committed with the group's offsets (or from the start of the
idempotency window, whichever is earlier; the whole log for a partition
without a checkpoint) up to the end it saw, then returns the new checkpoints.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from mmbus.contracts.codec import decode
from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import Stream, topic_name
from services.common.admin_session import with_admin
from services.common.logging import get_logger
from services.sender.knowledge_feed import caught_up
from services.sender.ledger import Ledger
from services.sender.offsets import LedgerCheckpoint, checkpoint_from_metadata, rebuild_from
from services.sender.settings import SenderSettings

log = get_logger("mmbus.sender")


async def rebuild_ledger(
    ledger: Ledger, settings: SenderSettings, partitions: list[int]
) -> tuple[dict[int, LedgerCheckpoint], int]:
    """Fold these partitions' send events into ``ledger``; their checkpoints and the count."""
    started = time.perf_counter()
    events_topic = topic_name(Stream.SEND_EVENTS, settings.topic_prefix)
    commands_topic = topic_name(Stream.SEND_COMMANDS, settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        client_id="mmbus-sender-ledger",
        enable_auto_commit=False,
        # The broker answers a connection's requests in turn: the offsets asked for after
        # the scan waited behind a fetch held open for new records, 500 ms by default.
        fetch_max_wait_ms=50,
        **settings.kafka_client_options(),
    )
    tps = [TopicPartition(events_topic, p) for p in partitions]
    command_tps = [TopicPartition(commands_topic, p) for p in partitions]
    # Independent look-ups, at once: the group's checkpoints (an admin client) and the
    # partitions' bounds. Every assignment waits for them before its first command.
    stored = asyncio.create_task(_stored_checkpoints(settings, commands_topic, partitions))
    try:
        await consumer.start()
        # The commands' partitions are never read, only their end at the close: assigned
        # (and paused) so the consumer's metadata knows them. Asked about partitions it
        # did not know, the consumer took a second to refresh its metadata first.
        consumer.assign(tps + command_tps)
        consumer.pause(*command_tps)
        beginnings = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        checkpoints = await stored
        # Events of commands not yet committed are at or after the checkpoint.
        committed_from = {
            tp: max(beginnings[tp], checkpoints.get(tp.partition, beginnings[tp])) for tp in tps
        }
        window = await _window_start(settings, consumer, beginnings, end)
        scanned_from = {
            tp: rebuild_from(
                beginning=beginnings[tp],
                checkpoint=checkpoints.get(tp.partition),
                window_start=window[tp],
            )
            for tp in tps
        }
        for tp, offset in scanned_from.items():
            consumer.seek(tp, offset)
        count = 0
        earlier: dict[TopicPartition, int] = {}  # first event at/after the checkpoint
        while not await caught_up(consumer, end):
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for rec in records:
                    if tp not in earlier and rec.offset >= committed_from[tp]:
                        earlier[tp] = rec.offset
                    event = decode(rec.value, rec.headers)
                    if isinstance(event, Message):
                        ledger.apply(event)
                        count += 1
        # Read after the scan: every result scanned belongs to a command before this end.
        commands_end = await consumer.end_offsets(command_tps)
    finally:
        stored.cancel()
        await asyncio.gather(stored, return_exceptions=True)
        await consumer.stop()
    rebuilt = {
        tp.partition: LedgerCheckpoint(
            earlier_results_from=earlier.get(tp),
            scanned_to=end[tp],
            commands_end=commands_end[TopicPartition(commands_topic, tp.partition)],
        )
        for tp in tps
    }
    log.info(
        "ledger rebuilt",
        partitions=partitions,
        events=count,
        checkpoints={str(p): offset for p, offset in checkpoints.items()},
        scanned_from={str(tp.partition): scanned_from[tp] for tp in tps},
        seconds=round(time.perf_counter() - started, 3),
    )
    return rebuilt, count


async def _window_start(
    settings: SenderSettings,
    consumer: AIOKafkaConsumer,
    beginnings: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """The first send event inside the idempotency window, per partition (0: no limit)."""
    window_s = settings.sender_idempotency_window_s
    if window_s is None:
        return dict.fromkeys(end, 0)
    # An empty partition has nothing to find (a first start): not asked.
    asked = [tp for tp in end if end[tp] > beginnings[tp]]
    since_ms = max(0, int((time.time() - window_s) * 1000))
    found = await consumer.offsets_for_times(dict.fromkeys(asked, since_ms)) if asked else {}
    return {tp: found[tp].offset if found.get(tp) is not None else end[tp] for tp in end}


async def _stored_checkpoints(
    settings: SenderSettings, commands_topic: str, partitions: list[int]
) -> dict[int, int]:
    """The checkpoints committed with the group's offsets; a partition without one is
    scanned from its beginning (first run, or offsets committed by an older version)."""
    wanted = [TopicPartition(commands_topic, p) for p in partitions]
    # A broker dying during a rebalance must not take the sender with it.
    stored = await with_admin(
        settings.kafka_client_options(),
        lambda admin: admin.list_consumer_group_offsets(
            settings.sender_group_id, partitions=wanted
        ),
    )
    out = {}
    for tp, committed in stored.items():
        found = checkpoint_from_metadata(committed.metadata) if committed.offset >= 0 else None
        if found is not None:
            out[tp.partition] = found
    return out
