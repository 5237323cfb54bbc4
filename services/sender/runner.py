"""The sender at work: consume commands, run each through the handler, commit what is done.

Guarantees, and where they come from:

- **Nothing lost.** A command's offset is committed only when it and every
  earlier command of its partition has a durable terminal event
  (:class:`~services.sender.offsets.PartitionProgress`). Invalid records become
  ``send.rejected`` plus a dead-letter record before their offset moves.
- **Nothing sent twice.** ``send.attempted`` is acknowledged by Kafka before
  each HTTP call. On every partition assignment the sender folds the
  co-partitioned send-event partition into the ledger
  (:mod:`services.sender.ledger_rebuild`); the handler skips a redelivered
  command with a result and reports one with an attempt and no result as
  ``send.indeterminate`` (policy ``do_not_resend``, the default).
- **Order per recipient, concurrency across recipients** (:mod:`services.sender.lanes`),
  **throughput** per business number (:mod:`services.sender.ratelimit`), and the
  in-flight window shared among partitions, so one number's backlog does not hold
  up the others (:mod:`services.sender.intake`).

This module owns the Kafka side: the consume loop, the gate that holds a new
partition's records until its ledger is rebuilt, the drain of revoked
partitions, and commits carrying the ledger checkpoint in their metadata. One
command's journey is :class:`services.sender.handler.CommandHandler`.

Why aiokafka directly and not a FastStream subscriber (as the ingest
normalizer and :mod:`mmbus.consumer` use): many commands of one partition are
in flight at once (lanes), and the offset committed is the lowest unfinished
one, with the ledger checkpoint in the commit's metadata. FastStream hands a
subscriber one record (or one batch) at a time and commits all consumed
positions on ack, so it can express neither the concurrency within a
partition nor the commit metadata. The rebuild on assignment also needs the
rebalance listener's hook before the first record of a partition is handled.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from mmbus.contracts.topics import Stream, topic_name
from services.common.logging import get_logger
from services.sender import runtime
from services.sender.clients import command_consumer, event_producer
from services.sender.commits import Commits
from services.sender.graph import GraphClient
from services.sender.handler import CommandHandler, Ports
from services.sender.intake import FairIntake
from services.sender.knowledge import Knowledge
from services.sender.knowledge_feed import follow_knowledge
from services.sender.lanes import Lanes
from services.sender.ledger import Ledger
from services.sender.ledger_rebuild import rebuild_ledger
from services.sender.metrics import SenderMetrics
from services.sender.permits import Permits
from services.sender.ports import Observer, SystemClock
from services.sender.publishing import KafkaResults
from services.sender.ratelimit import NumberPacer
from services.sender.rebuilds import RebuildLedger, Rebuilds
from services.sender.settings import SenderSettings

log = get_logger("mmbus.sender")
Record: TypeAlias = ConsumerRecord[bytes, bytes]


class Sender:
    def __init__(
        self,
        settings: SenderSettings,
        graph: GraphClient,
        *,
        metrics: SenderMetrics | None = None,
        rng: random.Random | None = None,
        observer: Observer | None = None,
        rebuild: RebuildLedger = rebuild_ledger,
    ) -> None:
        self.settings = settings
        self.observer = observer
        self.graph = graph
        self.metrics = metrics or SenderMetrics()
        self.rng = rng or random.Random()
        self.commands_topic = topic_name(Stream.SEND_COMMANDS, settings.topic_prefix)
        self.knowledge = Knowledge()
        self.ledger = Ledger()
        self.lanes = Lanes()
        self.pacer = NumberPacer(
            default_rate=settings.sender_rate_per_s,
            overrides=settings.sender_rate_overrides,
            safety=settings.sender_rate_safety,
        )
        self.commits = Commits()
        self.rebuilds = Rebuilds(
            self.ledger, settings, self.commits.checkpoints, self.metrics, self._failed, rebuild
        )
        self.tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        # aiokafka may hand out records of a new partition before its assignment
        # callback has finished; records wait here until their ledger is rebuilt.
        self.gates: dict[int, asyncio.Event] = {}
        # ...and it goes on handing out records of partitions being revoked while their
        # revocation callback drains them. Those are not started here: the next owner
        # reads them again from the committed offset (this sender too, if the partition
        # comes back: aiokafka starts every new assignment from the committed offsets).
        self.closing: set[TopicPartition] = set()
        self.knowledge_ready = asyncio.Event()
        self.consuming = asyncio.Event()
        self.fatal: BaseException | None = None
        self._results: KafkaResults | None = None
        self._handler: CommandHandler | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._slots = Permits(settings.sender_max_in_flight)
        # The order commands were taken in; the pacer serves the oldest first.
        self._intake = itertools.count()

    @property
    def ready(self) -> bool:
        return self.knowledge_ready.is_set() and self.consuming.is_set() and self.fatal is None

    def _build(self, producer: AIOKafkaProducer) -> CommandHandler:
        prefix, checkpoints = self.settings.topic_prefix, self.commits.checkpoints
        self._results = KafkaResults(producer, prefix, self.ledger, checkpoints, self.observer)
        ports = Ports(
            knowledge=self.knowledge,
            ledger=self.ledger,
            lanes=self.lanes,
            pacer=self.pacer,
            api=self.graph,
            out=self._results,
            clock=SystemClock(),
            metrics=self.metrics,
            rng=self.rng,
        )
        return CommandHandler(self.settings, ports)

    async def run(self, stop: asyncio.Event) -> None:
        producer = event_producer(self.settings)
        await producer.start()
        self._handler = self._build(producer)
        knowledge = asyncio.create_task(
            follow_knowledge(self.knowledge, self.settings, self.knowledge_ready, stop),
            name="sender-knowledge",
        )
        try:
            await runtime.until(self.knowledge_ready.wait(), stop, knowledge)
            if not stop.is_set():
                await self._serve(stop)
        finally:
            knowledge.cancel()
            await asyncio.gather(knowledge, return_exceptions=True)
            await producer.stop()
        if self.fatal is not None:
            raise runtime.FatalSenderError(str(self.fatal)) from self.fatal

    async def _serve(self, stop: asyncio.Event) -> None:
        self._consumer = command_consumer(self.settings, self.commands_topic)
        self._consumer.subscribe([self.commands_topic], listener=runtime.Rebalance(self))
        await self._consumer.start()
        committer = asyncio.create_task(
            self.commits.every(self.settings.sender_commit_interval_s, self._consumer, stop),
            name="sender-commits",
        )
        try:
            # Stopped at once, not when intake next looks: it may be waiting for a slot
            # of the in-flight window, which paced numbers free slowly.
            await runtime.unless_stopped(self._consume(stop), stop)
        finally:
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)
            await self.drain(self.commits.partitions())
            await self._flush()
            await self._commit()
            await self._consumer.stop()

    async def _consume(self, stop: asyncio.Event) -> None:
        assert self._consumer is not None
        slots, tasks = self._slots, self.tasks
        in_flight = lambda: {tp: len(running) for tp, running in tasks.items()}  # noqa: E731
        intake = FairIntake(self._consumer, in_flight, lambda: slots.free, slots.room)
        self.consuming.set()
        while not stop.is_set() and self.fatal is None:
            for tp, records in (await intake.take(self.closing)).items():
                for record in records:
                    await self._slots.acquire()
                    if tp in self.closing:
                        self._slots.release()
                        break
                    self._start(tp, record)
                # Let admitted calls go out between chunks of intake: a long intake
                # turn would hold them back and bunch them at the API.
                await asyncio.sleep(0)

    def _start(self, tp: TopicPartition, record: Record) -> None:
        assert self._handler is not None
        self.commits.started(tp, record.offset)
        self.metrics.started()
        order = next(self._intake)
        gate = self.gates.get(tp.partition)
        if gate is not None and gate.is_set():
            # The partition's ledger is whole: the task is the handler's coroutine itself,
            # one layer less to pass through each time the command resumes.
            if self.observer is not None:
                self.observer.command_taken(record)
            task = asyncio.create_task(self._handler.handle(record, order))
        else:
            task = asyncio.create_task(self._gated(tp.partition, record, order))
        tasks = self.tasks.setdefault(tp, set())
        tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            tasks.discard(t)
            self._slots.release()
            self.metrics.finished()
            self._ended(tp, record, t)

        task.add_done_callback(done)

    def _gate(self, partition: int) -> asyncio.Event:
        return self.gates.setdefault(partition, asyncio.Event())

    async def _gated(self, partition: int, record: Record, order: int) -> None:
        """A command taken before its partition's ledger was rebuilt: it waits for that."""
        assert self._handler is not None
        await self._gate(partition).wait()
        if self.observer is not None:
            self.observer.command_taken(record)
        await self._handler.handle(record, order)

    def _ended(self, tp: TopicPartition, record: Record, task: asyncio.Task[None]) -> None:
        """A command's task ended: done (its offset may be committed), stopped, or failed."""
        if task.cancelled():
            return  # stopped by a drain: the partition's next owner takes it over
        exc = task.exception()
        if exc is None:
            self.commits.finished(tp, record.offset)
        elif isinstance(exc, Exception):
            # Moving past this record could lose it: stop, and let the restart redo it.
            log.error(
                "command failed unexpectedly; stopping",
                offset=record.offset,
                partition=tp.partition,
                exc_info=exc,
            )
            self.fatal = exc

    def _failed(self, exc: Exception) -> None:
        self.fatal = exc

    # ---------------------------------------------------- rebalance, commits
    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Close the assigned partitions' gates until their ledger is rebuilt (see rebuilds.py)."""
        self.closing.difference_update(assigned)
        gates = {tp.partition: self._gate(tp.partition) for tp in assigned}
        if gates:
            self.rebuilds.start(gates)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self.closing.update(revoked)
        await self.rebuilds.cancel({tp.partition for tp in revoked})
        for tp in revoked:
            gate = self.gates.get(tp.partition)
            if gate is not None and not gate.is_set():
                # Never started: the partition's next owner will process them.
                for task in self.tasks.get(tp, set()):
                    task.cancel()
        await self.drain(list(revoked))
        await self._flush()
        await self._commit()
        for tp in revoked:
            self.commits.forget(tp)
            self.gates.pop(tp.partition, None)

    async def drain(self, tps: list[TopicPartition], timeout_s: float | None = None) -> None:
        """Let in-flight commands of these partitions finish; then stop the rest.

        A command still retrying after the partition moved on must not call the API
        again: its next owner rebuilds the ledger and decides, so only one of the two
        may. Stopping leaves no attempt open that need not be (services.sender.stopping).
        """
        pending = [t for tp in tps for t in self.tasks.get(tp, set())]
        limit = self.settings.sender_drain_timeout_s if timeout_s is None else timeout_s
        stops = self._handler.stops if self._handler is not None else None
        cancelled = await runtime.drain_tasks(pending, limit_s=limit, stops=stops)
        if cancelled:
            log.warning("stopped commands of revoked partitions", count=cancelled)

    async def _flush(self) -> None:
        """Every event already handed to the producer is durable before a partition moves on.

        A command cancelled by the drain may have handed over its result without waiting
        for the acknowledgement; if that record landed after the next owner rebuilt its
        ledger, the next owner would report the open attempt as well: two results.
        """
        if self._results is not None:
            await self._results.flush()

    async def _commit(self) -> None:
        if self._consumer is not None:
            await self.commits.commit(self._consumer)
