"""The sender at work: consume commands, decide, call the API, publish results.

Guarantees, and where they come from:

- **Nothing lost.** A command's offset is committed only when it and every
  earlier command of its partition has a durable terminal event
  (:class:`PartitionProgress`). Invalid records become ``send.rejected`` plus a
  dead-letter record before their offset moves.
- **Nothing sent twice.** ``send.attempted`` is acknowledged by Kafka before
  each HTTP call. On every partition assignment the sender folds the
  co-partitioned send-event partition into a ledger (command id -> attempted /
  finished); a redelivered command with a result is skipped, one with an
  attempt and no result becomes ``send.indeterminate`` (policy
  ``do_not_resend``, the default). A read timeout after the request left is the
  same ambiguous case and is never retried blindly.
- **Order per recipient, concurrency across recipients.** Commands run in
  lanes keyed by (business number, recipient): one lane is strictly sequential,
  lanes run concurrently, so one slow or retrying recipient blocks no other.
- **Throughput.** A pacer per business number spaces sends at the configured
  rate and backs off on 130429; the pair window (131056) is kept per recipient.

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
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from mmbus.contracts.codec import DecodeFailure, decode, encode
from mmbus.contracts.commands import SendTemplate, SendTemplateData
from mmbus.contracts.envelope import Message, derive_id, new_id
from mmbus.contracts.send_events import (
    ApiError,
    Decision,
    SendAccepted,
    SendAcceptedData,
    SendAttempted,
    SendAttemptedData,
    SendFailed,
    SendFailedData,
    SendIndeterminate,
    SendIndeterminateData,
    SendRejected,
    SendRejectedData,
    SendSuppressed,
    SendSuppressedData,
)
from mmbus.contracts.topics import Stream, topic_name
from mmbus.contracts.webhook_events import (
    AccountOnboardingObserved,
    AccountOnboardingObservedData,
    TemplateCategoryObserved,
    TemplateCategoryObservedData,
)
from mmbus.dead_letters import dead_letter
from mmbus.folds import (
    RecipientState,
    TemplateState,
    WabaState,
    evolve_recipient,
    evolve_template,
    evolve_waba,
    recipient_key,
    template_key,
)
from services.common.logging import get_logger
from services.sender.graph import GraphClient
from services.sender.metrics import SenderMetrics
from services.sender.offsets import (
    LedgerCheckpoint,
    PartitionProgress,
    checkpoint_from_metadata,
    checkpoint_metadata,
    rebuild_from,
)
from services.sender.outcomes import Delivered, Fail, Retry, Unknown, backoff_s, pair_wait_s
from services.sender.ratelimit import NumberPacer
from services.sender.routing import Hold, LookUp, Reject, RoutingPolicy, Send, Suppress, route
from services.sender.settings import SenderSettings

log = get_logger("mmbus.sender")
SOURCE = "mmbus/sender"
T = TypeVar("T")

TERMINAL_TYPES = frozenset(
    {"send.accepted", "send.failed", "send.suppressed", "send.rejected", "send.indeterminate"}
)


@dataclass
class LedgerEntry:
    """What the send-event log says about one command id."""

    attempts: int = 0
    terminal: bool = False
    in_flight: bool = False


@dataclass
class Ledger:
    entries: dict[str, LedgerEntry] = field(default_factory=dict)

    def get(self, command_id: str) -> LedgerEntry:
        return self.entries.setdefault(command_id, LedgerEntry())

    def apply(self, event: Message) -> None:
        command_id = getattr(event.data, "command_id", None)
        if not command_id:
            return
        entry = self.get(command_id)
        if event.type == "send.attempted":
            entry.attempts = max(entry.attempts, event.data.attempt)
        elif event.type in TERMINAL_TYPES:
            entry.terminal = True


class FatalSenderError(RuntimeError):
    """The sender cannot go on without risking loss; it stops so it is restarted."""


class Sender:
    def __init__(
        self,
        settings: SenderSettings,
        graph: GraphClient,
        *,
        metrics: SenderMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.graph = graph
        self.metrics = metrics or SenderMetrics()
        self.rng = rng or random.Random()
        prefix = settings.topic_prefix
        self.commands_topic = topic_name(Stream.SEND_COMMANDS, prefix)
        self.events_topic = topic_name(Stream.SEND_EVENTS, prefix)
        self.account_topic = topic_name(Stream.ACCOUNT, prefix)
        self.dead_letter_topic = topic_name(Stream.DEAD_LETTERS, prefix)
        self.templates_topic = topic_name(Stream.TEMPLATES, prefix)
        self.knowledge_topics = [
            self.account_topic,
            self.templates_topic,
            topic_name(Stream.PREFERENCES, prefix),
            topic_name(Stream.MESSAGE_STATUS, prefix),
        ]
        self.policy = RoutingPolicy(
            settings.sender_template_sync_guard,
            hold_max=timedelta(seconds=settings.sender_hold_max_s),
        )
        self.wabas: dict[str, WabaState] = {}
        self.templates: dict[str, TemplateState] = {}
        self.recipients: dict[str, RecipientState] = {}
        self.ledger = Ledger()
        self.progress: dict[TopicPartition, PartitionProgress] = {}
        self.committed: dict[TopicPartition, int] = {}
        # Per owned partition: where its next owner must start rebuilding the ledger.
        self.checkpoints: dict[int, LedgerCheckpoint] = {}
        self.lanes: dict[tuple[str, str], asyncio.Future[None]] = {}
        self.last_sent: dict[tuple[str, str], float] = {}
        self.pacer = NumberPacer(
            default_rate=settings.sender_rate_per_s,
            overrides=settings.sender_rate_overrides,
            safety=settings.sender_rate_safety,
        )
        self.lookups: dict[tuple[str, str], asyncio.Task[None]] = {}
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
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._slots = asyncio.Semaphore(settings.sender_max_in_flight)
        # The order commands were taken in; the pacer serves the oldest first.
        self._intake = itertools.count()

    # ------------------------------------------------------------ lifecycle
    @property
    def ready(self) -> bool:
        return self.knowledge_ready.is_set() and self.consuming.is_set() and self.fatal is None

    async def run(self, stop: asyncio.Event) -> None:
        options = self.settings.kafka_client_options()
        # Large batches: an idempotent producer has one request in flight per partition,
        # and 16 KB batches (the default) held only ~16 send events each.
        self._producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=1024 * 1024,
            client_id="mmbus-sender",
            **self.settings.kafka_producer_options(),
        )
        await self._producer.start()
        knowledge = asyncio.create_task(follow_knowledge(self, stop), name="sender-knowledge")
        try:
            await _until(self.knowledge_ready.wait(), stop, knowledge)
            if stop.is_set():
                return
            self._consumer = AIOKafkaConsumer(
                self.commands_topic,
                group_id=self.settings.sender_group_id,
                client_id="mmbus-sender",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=500,
                # aiokafka's default is the session timeout (10 s), shorter than a drain.
                rebalance_timeout_ms=int(self.settings.sender_rebalance_timeout_s * 1000),
                **options,
            )
            self._consumer.subscribe([self.commands_topic], listener=_Rebalance(self))
            await self._consumer.start()
            committer = asyncio.create_task(self._commit_loop(stop), name="sender-commits")
            try:
                await self._consume(stop)
            finally:
                committer.cancel()
                await asyncio.gather(committer, return_exceptions=True)
                await self._drain(list(self.progress))
                await self._flush()
                await self._commit()
                await self._consumer.stop()
        finally:
            knowledge.cancel()
            await asyncio.gather(knowledge, return_exceptions=True)
            await self._producer.stop()
        if self.fatal is not None:
            raise FatalSenderError(str(self.fatal)) from self.fatal

    async def _consume(self, stop: asyncio.Event) -> None:
        assert self._consumer is not None
        self.consuming.set()
        while not stop.is_set() and self.fatal is None:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=100)
            for tp, records in batches.items():
                for i, record in enumerate(records, 1):
                    await self._slots.acquire()
                    if tp in self.closing:
                        self._slots.release()
                        break
                    self._start(tp, record)
                    if i % 20 == 0:
                        # Let admitted calls go out between chunks of intake: a long
                        # intake turn would hold them back and bunch them at the API.
                        await asyncio.sleep(0)

    def _start(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        progress = self.progress.setdefault(tp, PartitionProgress(record.offset))
        progress.started(record.offset)
        self.metrics.in_flight.inc()
        task = asyncio.create_task(self._process(tp, record, next(self._intake)))
        self.tasks.setdefault(tp, set()).add(task)

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.get(tp, set()).discard(t)
            self._slots.release()
            self.metrics.in_flight.dec()

        task.add_done_callback(done)

    def _gate(self, partition: int) -> asyncio.Event:
        return self.gates.setdefault(partition, asyncio.Event())

    async def _process(
        self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes], order: int
    ) -> None:
        try:
            await self._gate(tp.partition).wait()
            await self._handle(record, order)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Moving past this record could lose it: stop, and let the restart redo it.
            log.exception(
                "command failed unexpectedly; stopping",
                offset=record.offset,
                partition=tp.partition,
            )
            self.fatal = exc
            return
        progress = self.progress.get(tp)
        if progress is not None:
            progress.finished(record.offset)

    # ------------------------------------------------------------- handling
    async def _handle(self, record: ConsumerRecord[bytes, bytes], order: int) -> None:
        message = decode(record.value, record.headers)
        if isinstance(message, DecodeFailure) or not isinstance(message, SendTemplate):
            failure = (
                message
                if isinstance(message, DecodeFailure)
                else DecodeFailure(
                    "unknown_type", f"{message.type} is not a command", message_type=message.type
                )
            )
            await self._dead_letter(record, failure)
            return
        data = message.data
        entry = self.ledger.get(data.command_id)
        if entry.terminal or entry.in_flight:
            self.metrics.duplicates.inc()
            log.info("duplicate command skipped", command_id=data.command_id, offset=record.offset)
            return
        if entry.attempts and self.settings.sender_indeterminate_policy == "do_not_resend":
            await self._publish(
                _about(
                    SendIndeterminate,
                    data.command_id,
                    cause=message.id,
                    id=derive_id("send.indeterminate", {"command_id": data.command_id}),
                    data=SendIndeterminateData(
                        **_ref(data),
                        attempt=entry.attempts,
                        decision=Decision(
                            endpoint=None, reasons=("restart found an attempt without result",)
                        ),
                        cause="attempt_without_result_on_restart",
                        detail=f"send.attempted #{entry.attempts} has no result; "
                        "policy do_not_resend",
                    ),
                ),
                record,
            )
            return
        entry.in_flight = True
        try:
            await self._in_lane(
                (data.phone_number_id, data.to), lambda: self._execute(record, message, order)
            )
        finally:
            entry.in_flight = False

    async def _in_lane(self, key: tuple[str, str], work: Callable[[], Awaitable[None]]) -> None:
        """Run after every earlier command to the same recipient from the same number."""
        previous = self.lanes.get(key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lanes[key] = mine
        try:
            if previous is not None:
                # Shielded: cancelling this command (a drain) must not cancel the future
                # of the one before it, which would then fail to resolve it.
                await asyncio.shield(previous)
            await work()
        finally:
            if not mine.done():
                mine.set_result(None)
            if self.lanes.get(key) is mine:
                del self.lanes[key]

    async def _execute(
        self, record: ConsumerRecord[bytes, bytes], command: SendTemplate, order: int
    ) -> None:
        data = command.data
        log_ = log.bind(command_id=data.command_id)
        held_since: datetime | None = None
        for _ in range(4):
            outcome = route(
                data,
                self.wabas.get(data.waba_id),
                self.templates.get(template_key(data.waba_id, data.template.name)),
                self.recipients.get(data.to),
                self.policy,
                _now(),
                held_since,
            )
            if isinstance(outcome, LookUp):
                error = await self._look_up(outcome.what, data)
                if error is not None:
                    await self._fail(
                        record,
                        command,
                        Decision(endpoint=None, reasons=(error.message or "",)),
                        error,
                        0,
                        retryable=True,
                    )
                    return
                continue
            if isinstance(outcome, Hold):
                held_since = held_since or _now()
                wait = (outcome.until - _now()).total_seconds()
                log_.info("holding for template sync", seconds=round(wait, 1), why=outcome.detail)
                await asyncio.sleep(max(0.0, wait))
                continue
            break
        else:
            await self._fail(
                record,
                command,
                Decision(endpoint=None, reasons=("lookups did not settle",)),
                ApiError(message="could not decide"),
                0,
                retryable=True,
            )
            return

        if isinstance(outcome, Suppress):
            self.metrics.count(None, "suppressed", outcome.rule)
            await self._publish(
                _about(
                    SendSuppressed,
                    data.command_id,
                    cause=command.id,
                    data=SendSuppressedData(
                        **_ref(data),
                        rule=outcome.rule,
                        detail=outcome.detail,
                        decision=outcome.decision,
                    ),
                ),
                record,
            )
            return
        if isinstance(outcome, Reject):
            self.metrics.count(None, "rejected", outcome.reason)
            await self._publish(
                _about(
                    SendRejected,
                    data.command_id,
                    cause=command.id,
                    data=SendRejectedData(
                        command_id=data.command_id,
                        phone_number_id=data.phone_number_id,
                        reason=outcome.reason,
                        errors=(outcome.detail,),
                        decision=outcome.decision,
                    ),
                ),
                record,
            )
            return
        assert isinstance(outcome, Send)
        await self._send(record, command, outcome, order)

    async def _send(
        self,
        record: ConsumerRecord[bytes, bytes],
        command: SendTemplate,
        plan: Send,
        order: int,
    ) -> None:
        data = command.data
        lane = (data.phone_number_id, data.to)
        entry = self.ledger.get(data.command_id)
        last_error = ApiError(message="no attempt made")
        for attempt in range(
            entry.attempts + 1, entry.attempts + 1 + self.settings.sender_max_attempts
        ):
            depth = self.metrics.queue_depth.labels(data.phone_number_id)
            depth.inc()
            try:
                waited = await self.pacer.acquire(data.phone_number_id, order)
            finally:
                depth.dec()
            self.metrics.limiter_wait.observe(waited)
            last = self.last_sent.get(lane)
            if last is not None:
                gap = self.settings.sender_pair_window_s - (time.monotonic() - last)
                if gap > 0:
                    await asyncio.sleep(gap)
            attempted = _about(
                SendAttempted,
                data.command_id,
                cause=command.id,
                data=SendAttemptedData(**_ref(data), attempt=attempt, decision=plan.decision),
            )
            await self._publish(attempted, record)  # durable before the call
            self.metrics.limiter_wait.observe(await self.pacer.admit(data.phone_number_id, order))
            requested_at = _now()
            result, seconds = await self.graph.send(
                data.provider, data.phone_number_id, plan.endpoint, plan.body
            )
            self.metrics.http_latency.labels(plan.endpoint).observe(seconds)
            if isinstance(result, Delivered):
                self.pacer.succeeded(data.phone_number_id)
                self.last_sent[lane] = time.monotonic()
                self._template_used(data)
                self.metrics.count(plan.endpoint, "accepted", None)
                await self._publish(
                    _about(
                        SendAccepted,
                        data.command_id,
                        cause=attempted.id,
                        id=derive_id(
                            "send.accepted", {"command_id": data.command_id, "wamid": result.wamid}
                        ),
                        data=SendAcceptedData(
                            **_ref(data),
                            attempt=attempt,
                            decision=plan.decision,
                            wamid=result.wamid,
                            wa_id=result.wa_id,
                            http_status=result.http_status,
                            message_status=result.message_status,
                            requested_at=requested_at,
                        ),
                    ),
                    record,
                )
                return
            if isinstance(result, Unknown):
                self.metrics.count(plan.endpoint, "indeterminate", None)
                log.warning("ambiguous send", command_id=data.command_id, detail=result.detail)
                await self._publish(
                    _about(
                        SendIndeterminate,
                        data.command_id,
                        cause=attempted.id,
                        id=derive_id("send.indeterminate", {"command_id": data.command_id}),
                        data=SendIndeterminateData(
                            **_ref(data),
                            attempt=attempt,
                            decision=plan.decision,
                            cause=result.cause,
                            detail=result.detail,
                        ),
                    ),
                    record,
                )
                return
            if isinstance(result, Fail):
                self.metrics.count(plan.endpoint, "failed", result.error.code)
                await self._fail(
                    record, command, plan.decision, result.error, attempt, retryable=False
                )
                return
            assert isinstance(result, Retry)
            last_error = result.error
            self.metrics.count(plan.endpoint, "retried", result.error.code)
            if result.throttled:
                self.pacer.throttled(data.phone_number_id)
            if result.pair_limited:
                await asyncio.sleep(
                    pair_wait_s(attempt - entry.attempts, self.settings.sender_pair_window_s)
                )
            else:
                await asyncio.sleep(
                    backoff_s(
                        attempt - entry.attempts,
                        base_s=self.settings.sender_backoff_base_s,
                        cap_s=self.settings.sender_backoff_cap_s,
                        rng=self.rng,
                    )
                )
        self.metrics.count(plan.endpoint, "failed", last_error.code)
        await self._fail(record, command, plan.decision, last_error, attempt, retryable=True)

    async def _fail(
        self,
        record: ConsumerRecord[bytes, bytes],
        command: SendTemplate,
        decision: Decision,
        error: ApiError,
        attempt: int,
        *,
        retryable: bool,
    ) -> None:
        data = command.data
        await self._publish(
            _about(
                SendFailed,
                data.command_id,
                cause=command.id,
                data=SendFailedData(
                    **_ref(data),
                    attempt=max(1, attempt),
                    decision=decision,
                    error=error,
                    retryable=retryable,
                ),
            ),
            record,
        )

    def _template_used(self, data: SendTemplateData) -> None:
        key = template_key(data.waba_id, data.template.name)
        current = self.templates.get(key) or TemplateState(data.waba_id, data.template.name)
        self.templates[key] = TemplateState(
            current.waba_id,
            current.name,
            current.category,
            current.status,
            current.approved_at,
            _now(),
        )

    # -------------------------------------------------------------- lookups
    async def _look_up(
        self, what: Literal["waba_onboarding", "template_category"], data: SendTemplateData
    ) -> ApiError | None:
        key = (
            what,
            data.waba_id
            if what == "waba_onboarding"
            else template_key(data.waba_id, data.template.name),
        )
        task = self.lookups.get(key)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.create_task(self._do_look_up(what, data))
            self.lookups[key] = task
        try:
            await asyncio.shield(task)
        except Exception as exc:
            self.lookups.pop(key, None)
            return ApiError(message=f"{what} lookup failed: {exc}")
        return None

    async def _do_look_up(self, what: str, data: SendTemplateData) -> None:
        for attempt in range(1, 4):
            try:
                if what == "waba_onboarding":
                    answer = await self.graph.waba_onboarding(data.waba_id)
                    observed = AccountOnboardingObserved(
                        id=new_id(),
                        time=_now(),
                        source=SOURCE,
                        subject=data.waba_id,
                        correlation_id=data.command_id,
                        data=AccountOnboardingObservedData(
                            waba_id=data.waba_id,
                            marketing_messages_onboarding_status=answer.get(
                                "marketing_messages_onboarding_status"
                            ),
                            disable_marketing_messages_on_cloud_api=answer.get(
                                "disable_marketing_messages_on_cloud_api"
                            ),
                            raw=answer,
                        ),
                    )
                    await self._publish(observed, None, topic=self.account_topic)
                    state = evolve_waba(self.wabas.get(data.waba_id), observed)
                    if state is not None:
                        self.wabas[data.waba_id] = state
                    return
                template = await self.graph.template(
                    data.waba_id, data.template.name, data.template.language.code
                )
                category = template.get("category") if template else None
                if not isinstance(category, str) or not category:
                    raise LookupError(
                        f"template {data.template.name} ({data.template.language.code}) "
                        "is unknown to the API"
                    )
                assert template is not None
                template_id = template.get("id")
                seen = TemplateCategoryObserved(
                    id=new_id(),
                    time=_now(),
                    source=SOURCE,
                    subject=f"{data.waba_id}:{data.template.name}",
                    correlation_id=data.command_id,
                    data=TemplateCategoryObservedData(
                        waba_id=data.waba_id,
                        name=data.template.name,
                        language=data.template.language.code,
                        template_id=str(template_id) if template_id is not None else None,
                        category=category,
                        raw=template,
                    ),
                )
                # Recorded before it is used: a decision made on it is explained by the log,
                # and a restarted sender knows it without asking again.
                await self._publish(seen, None, topic=self.templates_topic)
                key = template_key(data.waba_id, data.template.name)
                tstate = evolve_template(self.templates.get(key), seen)
                if tstate is not None:
                    self.templates[key] = tstate
                return
            except LookupError:
                raise
            except Exception:
                if attempt == 3:
                    raise
                await asyncio.sleep(backoff_s(attempt, base_s=0.2, cap_s=2.0, rng=self.rng))

    # ----------------------------------------------------------- publishing
    async def _publish(
        self,
        event: Message,
        command: ConsumerRecord[bytes, bytes] | None,
        *,
        topic: str | None = None,
    ) -> None:
        """Publish and wait for the acknowledgement. Events about a command go to the
        send-event partition of the command's partition (co-partitioned)."""
        assert self._producer is not None
        target = topic or self.events_topic
        checkpoint = self.checkpoints.get(command.partition) if command is not None else None
        if checkpoint is not None and target == self.events_topic:
            assert command is not None
            checkpoint.started(command.offset)  # before its first write lands
        record = encode(event)
        future = await self._producer.send(
            target,
            value=record.value,
            key=record.key,
            headers=record.headers,
            partition=command.partition if command is not None else None,
        )
        written = await future
        if target == self.events_topic:
            self.ledger.apply(event)
            if checkpoint is not None:
                checkpoint.wrote(written.offset)

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], failure: DecodeFailure
    ) -> None:
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        command_id, number = _salvage(record.value)
        dead = dead_letter(
            record,
            failure,
            consumer=self.settings.sender_group_id,
            source=SOURCE,
            time=_now(),
            correlation_id=command_id,
        )
        await self._publish(dead, None, topic=self.dead_letter_topic)
        self.metrics.count(None, "dead_lettered", failure.reason)
        log.warning(
            "invalid command dead-lettered",
            reason=failure.reason,
            detail=failure.detail,
            offset=record.offset,
        )
        await self._publish(
            SendRejected(
                id=derive_id("send.rejected", where),
                time=_now(),
                source=SOURCE,
                subject=command_id or dead.subject,
                correlation_id=command_id,
                causation_id=dead.id,
                data=SendRejectedData(
                    command_id=command_id,
                    phone_number_id=number,
                    reason=failure.reason,
                    errors=failure.errors or (failure.detail,),
                    dead_letter_topic=self.dead_letter_topic,
                ),
            ),
            record,
        )

    # ---------------------------------------------------- rebalance, commits
    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Fold each assigned partition's send events into the ledger before any command runs."""
        self.closing.difference_update(assigned)
        partitions = sorted(tp.partition for tp in assigned)
        gates = [self._gate(p) for p in partitions]  # closed until the ledger is whole
        if not partitions:
            return
        try:
            await self._rebuild(partitions)
        except Exception as exc:
            log.exception("ledger rebuild failed; stopping", partitions=partitions)
            self.fatal = exc
            return
        for gate in gates:
            gate.set()

    async def _rebuild(self, partitions: list[int]) -> None:
        """Fold the send events of these partitions from their checkpoints (or the start)."""
        started = time.perf_counter()
        checkpoints = await self._stored_checkpoints(partitions)
        consumer = AIOKafkaConsumer(
            client_id="mmbus-sender-ledger",
            enable_auto_commit=False,
            **self.settings.kafka_client_options(),
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.events_topic, p) for p in partitions]
            consumer.assign(tps)
            beginnings = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            # Events of commands not yet committed are at or after the checkpoint.
            committed_from = {
                tp: max(beginnings[tp], checkpoints.get(tp.partition, beginnings[tp])) for tp in tps
            }
            window = await self._window_start(consumer, tps, end)
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
            while not await _caught_up(consumer, end):
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, records in batches.items():
                    for rec in records:
                        if tp not in earlier and rec.offset >= committed_from[tp]:
                            earlier[tp] = rec.offset
                        event = decode(rec.value, rec.headers)
                        if isinstance(event, Message):
                            self.ledger.apply(event)
                            count += 1
            # Read after the scan: every result scanned belongs to a command before this end.
            command_tps = [TopicPartition(self.commands_topic, p) for p in partitions]
            commands_end = await consumer.end_offsets(command_tps)
        finally:
            await consumer.stop()
        for tp in tps:
            self.checkpoints[tp.partition] = LedgerCheckpoint(
                earlier_results_from=earlier.get(tp),
                scanned_to=end[tp],
                commands_end=commands_end[TopicPartition(self.commands_topic, tp.partition)],
            )
        self.metrics.ledger_rebuild_events.inc(count)
        log.info(
            "ledger rebuilt",
            partitions=partitions,
            events=count,
            checkpoints={str(p): offset for p, offset in checkpoints.items()},
            scanned_from={str(tp.partition): scanned_from[tp] for tp in tps},
            seconds=round(time.perf_counter() - started, 3),
        )

    async def _window_start(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], end: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """The first send event inside the idempotency window, per partition (0: no limit)."""
        window_s = self.settings.sender_idempotency_window_s
        if window_s is None:
            return dict.fromkeys(tps, 0)
        since_ms = int((time.time() - window_s) * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(tps, max(0, since_ms)))
        return {tp: found[tp].offset if found.get(tp) is not None else end[tp] for tp in tps}

    async def _stored_checkpoints(self, partitions: list[int]) -> dict[int, int]:
        """The checkpoints committed with the group's offsets; a partition without one is
        scanned from its beginning (first run, or offsets committed by an older version)."""
        admin = AIOKafkaAdminClient(**self.settings.kafka_client_options())
        await admin.start()
        try:
            stored = await admin.list_consumer_group_offsets(
                self.settings.sender_group_id,
                partitions=[TopicPartition(self.commands_topic, p) for p in partitions],
            )
        finally:
            await admin.close()
        out = {}
        for tp, committed in stored.items():
            found = checkpoint_from_metadata(committed.metadata) if committed.offset >= 0 else None
            if found is not None:
                out[tp.partition] = found
        return out

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self.closing.update(revoked)
        for tp in revoked:
            gate = self.gates.get(tp.partition)
            if gate is not None and not gate.is_set():
                # Never started: the partition's next owner will process them.
                for task in self.tasks.get(tp, set()):
                    task.cancel()
        await self._drain(list(revoked))
        await self._flush()
        await self._commit()
        for tp in revoked:
            self.progress.pop(tp, None)
            self.committed.pop(tp, None)
            self.gates.pop(tp.partition, None)
            self.checkpoints.pop(tp.partition, None)

    async def _drain(self, tps: list[TopicPartition], timeout_s: float | None = None) -> None:
        """Let in-flight commands of these partitions finish; cancel what is still running.

        A command still retrying after the partition moved on must not call the API
        again: its next owner rebuilds the ledger and reports any open attempt as
        send.indeterminate, so only one of the two may decide.
        """
        pending = [t for tp in tps for t in self.tasks.get(tp, set())]
        if not pending:
            return
        limit = self.settings.sender_drain_timeout_s if timeout_s is None else timeout_s
        _, still_running = await asyncio.wait(pending, timeout=limit)
        for task in still_running:
            task.cancel()
        if still_running:
            log.warning("cancelled commands of revoked partitions", count=len(still_running))
            await asyncio.gather(*still_running, return_exceptions=True)

    async def _flush(self) -> None:
        """Every event already handed to the producer is durable before a partition moves on.

        A command cancelled by the drain may have handed over its result without waiting
        for the acknowledgement; if that record landed after the next owner rebuilt its
        ledger, the next owner would report the open attempt as well: two results.
        """
        if self._producer is not None:
            await self._producer.flush()

    async def _commit_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.settings.sender_commit_interval_s)
            await self._commit()

    async def _commit(self) -> None:
        if self._consumer is None:
            return
        offsets: dict[TopicPartition, tuple[int, str]] = {}
        for tp, progress in self.progress.items():
            position = progress.committable()
            checkpoint = self.checkpoints.get(tp.partition)
            if position > self.committed.get(tp, -1) and checkpoint is not None:
                offsets[tp] = (position, checkpoint_metadata(checkpoint.scan_from(position)))
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except Exception as exc:  # a rebalance in progress: the next tick commits
            log.info("commit deferred", error=type(exc).__name__)
            return
        self.committed.update({tp: position for tp, (position, _) in offsets.items()})


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sender: Sender) -> None:
        self.sender = sender

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.sender.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.sender.on_assigned(assigned)


# ------------------------------------------------------------------ knowledge
def _apply_knowledge(sender: Sender, event: Message) -> None:
    waba_id = getattr(event.data, "waba_id", None)
    if event.type in {"account.updated", "account.onboarding_observed"} and waba_id:
        state = evolve_waba(sender.wabas.get(waba_id), event)
        if state is not None:
            sender.wabas[waba_id] = state
    elif event.type.startswith("template.") and waba_id:
        key = template_key(waba_id, getattr(event.data, "name", None) or "")
        tstate = evolve_template(sender.templates.get(key), event)
        if tstate is not None:
            sender.templates[key] = tstate
    else:
        user = recipient_key(event)
        if user:
            rstate = evolve_recipient(sender.recipients.get(user), event)
            if rstate is not None:
                sender.recipients[user] = rstate


async def follow_knowledge(sender: Sender, stop: asyncio.Event) -> None:
    """Fold the account, template, preference and status streams, from the beginning, forever."""
    consumer = AIOKafkaConsumer(
        client_id="mmbus-sender-knowledge",
        enable_auto_commit=False,
        **sender.settings.kafka_client_options(),
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in sender.knowledge_topics
            for p in sorted(
                consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
            )
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for rec in records:
                    event = decode(rec.value, rec.headers)
                    if isinstance(event, Message):
                        _apply_knowledge(sender, event)
            if not sender.knowledge_ready.is_set() and await _caught_up(consumer, end):
                log.info(
                    "knowledge caught up",
                    wabas=len(sender.wabas),
                    recipients=len(sender.recipients),
                )
                sender.knowledge_ready.set()
    finally:
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, last in end.items():
        if await consumer.position(tp) < last:
            return False
    return True


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise FatalSenderError(f"topic {topic} does not exist; run `mmbus topics create`")
    return set(parts)


# -------------------------------------------------------------------- helpers
E = TypeVar("E", bound=Message)


def _now() -> datetime:
    return datetime.now(UTC)


def _about(
    kind: type[E], command_id: str, *, cause: str | None, data: Any, id: str | None = None
) -> E:
    """An event about one command, its envelope filled the same way every time."""
    return kind.model_validate(
        {
            "id": id or new_id(),
            "time": _now(),
            "source": SOURCE,
            "subject": command_id,
            "correlation_id": command_id,
            "causation_id": cause,
            "data": data,
        }
    )


def _ref(data: SendTemplateData) -> dict[str, Any]:
    return {
        "command_id": data.command_id,
        "waba_id": data.waba_id,
        "phone_number_id": data.phone_number_id,
        "to": data.to,
        "provider": data.provider,
        "campaign_id": data.campaign_id,
        "template_name": data.template.name,
        "template_language": data.template.language.code,
    }


def _salvage(value: bytes | None) -> tuple[str | None, str | None]:
    """Best effort: the command id and number of an unreadable command, for the rejection."""
    try:
        raw = orjson.loads(value or b"")
        data = raw.get("data", {}) if isinstance(raw, dict) else {}
        cid, number = data.get("command_id"), data.get("phone_number_id")
        return (cid if isinstance(cid, str) else None, number if isinstance(number, str) else None)
    except (orjson.JSONDecodeError, AttributeError):
        return None, None


async def _until(
    awaitable: Coroutine[Any, Any, T], stop: asyncio.Event, watch: asyncio.Task[None]
) -> None:
    """Wait for ``awaitable`` unless ``stop`` is set or ``watch`` dies first."""
    main = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({main, stopper, watch}, return_when=asyncio.FIRST_COMPLETED)
    for t in (main, stopper):
        if t not in done:
            t.cancel()
    if watch in done and watch.exception() is not None:
        raise FatalSenderError(f"knowledge consumer failed: {watch.exception()}")
