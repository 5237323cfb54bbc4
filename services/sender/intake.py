"""Which partitions the runner takes commands from next: a few from each, in turn.

aiokafka hands out a partition's fetched records until that partition's buffer
is empty (about a thousand commands per fetch), so the in-flight window filled
with one partition's commands, which in a campaign are mostly one business
number's. Those then waited for that number's pace while the other numbers'
commands waited in Kafka: in the sender benchmark nearly every command waited
for a pacer slot (30 to 270 ms on average per number) and the sender did about
920 sends/s, one number's limit, with CPU to spare. The runner now takes a few
records from each partition in turn, and passes over a partition that holds
more than its share of the window while others are served; the records it
leaves stay in the consumer's buffer, in order, and the consumer fetches no
more for that partition until they are taken.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

P = TypeVar("P")
Record: TypeAlias = ConsumerRecord[bytes, bytes]

PER_TURN = 20  # records taken from one partition before the next one's turn


def share(max_in_flight: int, partitions: int) -> int:
    """A partition's fair part of the window when every partition has work."""
    return max(PER_TURN, max_in_flight // max(1, partitions))


def turns(
    partitions: Sequence[P], in_flight: Mapping[P, int], max_in_flight: int
) -> tuple[list[P], list[P]]:
    """The partitions to take from first (under their share), then the rest.

    The rest are asked only when the first gave nothing: a partition over its share
    still gets the whole window when no other has work.
    """
    fair = share(max_in_flight, len(partitions))
    first = [p for p in partitions if in_flight.get(p, 0) < fair]
    rest = [p for p in partitions if in_flight.get(p, 0) >= fair]
    return first, rest


async def take(
    consumer: AIOKafkaConsumer,
    running: Mapping[TopicPartition, Collection[Any]],
    max_in_flight: int,
) -> dict[TopicPartition, list[Record]]:
    """The next records: up to ``PER_TURN`` from each partition in its turn; when none is
    ready, whatever arrives first (waiting at most 200 ms)."""
    assigned = sorted(consumer.assignment())
    in_flight = {tp: len(running.get(tp, ())) for tp in assigned}
    for group in turns(assigned, in_flight, max_in_flight):
        batches: dict[TopicPartition, list[Record]] = {}
        for tp in group:
            batches.update(await consumer.getmany(tp, max_records=PER_TURN))
        if batches:
            return batches
    waited: dict[TopicPartition, list[Record]] = await consumer.getmany(
        timeout_ms=200, max_records=PER_TURN
    )
    return waited
