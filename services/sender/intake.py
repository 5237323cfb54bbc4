"""Which partition's records the sender takes next: the least served first.

Commands are keyed by business number, so a partition's backlog is mostly one
number's, and a number goes no faster than its pacer lets it. aiokafka hands out
a partition's fetched records until they run out before it moves on to the next
(``Fetcher.fetched_records`` walks its buffer in order, and one fetch holds up to
a megabyte, about a thousand commands), so intake used to take one number's backlog at
a time. Measured with ``make bench-sender`` (5 numbers at 920/s each, 1,200
commands each): about 300 of the 512 commands in flight waited at one number's
pacer while the others had nothing in flight, and the sender did 1,700 sends/s
where its pacers allowed 4,600. Worse, a slow number (say 80/s) with a large
backlog took the whole window, and every other number's commands waited until
that backlog had drained, minutes later.

So intake takes no more records than the window has free places, and offers
each free place to the partitions in order of how little of the window they
hold (:func:`turn_order`): the first with records fetched takes it. A
partition alone gets the whole window; a partition whose commands finish
quickly gets its places back at once, while a slow number's backlog gets only
the places nobody else has records for. Fairness is per partition, not per
number: the runner decides before decoding, and two numbers whose keys hash to
one partition share its part.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

P = TypeVar("P")
Record: TypeAlias = ConsumerRecord[bytes, bytes]


def turn_order(partitions: Sequence[P], in_flight: Mapping[P, int], turn: int) -> list[P]:
    """The partitions in the order intake serves them: fewest commands in flight first,
    ties taken in rotation (``turn`` moves the start), so each free place of the window
    goes to the partition that holds the least of it and has records to start."""
    n = len(partitions)
    rotated = [partitions[(turn + i) % n] for i in range(n)]
    return sorted(rotated, key=lambda p: in_flight.get(p, 0))


class FairIntake:
    """Takes records round the partitions, at most ``chunk`` from each in a turn, and
    never more than the window has free places for: records taken but not startable
    would hold a place's next turn for their partition, whatever the order says."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        in_flight: Callable[[], Mapping[TopicPartition, int]],
        free: Callable[[], int],
        room: Callable[[], Awaitable[None]],
        *,
        chunk: int = 20,
        wait_ms: int = 200,
    ) -> None:
        self._consumer = consumer
        self._in_flight = in_flight
        self._free = free
        self._room = room
        self._chunk = chunk
        self._wait_ms = wait_ms
        self._turn = 0

    async def take(self, closing: Collection[TopicPartition]) -> dict[TopicPartition, list[Record]]:
        """The next records to start, a chunk from each partition in turn; waits while none.

        Returns nothing after ``wait_ms`` without records, so the caller sees a stop.
        """
        if self._free() == 0:
            await self._room()
            return {}
        assigned = sorted(tp for tp in self._consumer.assignment() if tp not in closing)
        self._turn += 1
        order = turn_order(assigned, self._in_flight(), self._turn)
        taken = await self._take_buffered(order)
        if taken:
            return taken
        # Nothing fetched for any partition: wait for records.
        waited: dict[TopicPartition, list[Record]] = await self._consumer.getmany(
            *order, timeout_ms=self._wait_ms, max_records=min(self._chunk, self._free())
        )
        return waited

    async def _take_buffered(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, list[Record]]:
        taken: dict[TopicPartition, list[Record]] = {}
        budget = self._free()
        for tp in partitions:
            if budget == 0:
                break
            batch = await self._consumer.getmany(
                tp, timeout_ms=0, max_records=min(self._chunk, budget)
            )
            records = batch.get(tp)
            if records:
                taken[tp] = records
                budget -= len(records)
        return taken
