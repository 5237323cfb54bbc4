"""Which send a status or click belongs to, as a trace context the normalizer can link to.

Why this design:

- **Learned from the log, not carried through Meta.** Every send event carries its
  command's W3C ``traceparent`` in its Kafka headers (the sender writes it), and
  ``send.accepted`` names the wamid. Meta echoes ``biz_opaque_callback_data`` on
  every status, and the sender writes the command id there
  (:mod:`mmbus.contracts.callback`); but that field is the callers' too (512
  characters shared with their own data) and is stored at Meta for the message's
  life, so a trace id is not smuggled into it. The command id already there is
  the join key; the trace context is looked up by it.
- **Keys:** the command id (from every send event that may have reached Meta,
  looked up through the status's callback data), the wamid (from
  ``send.accepted``; for a status without callback data) and the tracking token
  (from a command's ``tracking_token`` label: Meta's click webhook names no
  message). A token shared by a campaign links a click to the campaign's latest
  send, which the link's ``mmbus.join`` attribute says.
- **Bounded.** At most ``capacity`` keys, the least recently learned or used
  evicted first; at start the streams are read back ``lookback_s`` seconds only
  (``offsets_for_times``), never the whole log. A status older than that memory
  gets no link: tracing is a diagnostic and may lose old links, never data.
- **A consumer of its own, outside any group:** it assigns itself every
  partition and commits nothing, as a cache should; each normalizer instance
  learns every send because any of them may normalise any webhook.
- **Racing the sender.** A webhook can be normalised before this consumer has
  fetched the send event it needs. When a batch holds a status or click it cannot
  link, :meth:`SendTraces.settle` asks for the streams' end offsets (one request)
  and waits, at most ``settle_s``, until everything written before then has been
  read. A send event not yet written cannot be waited for: Meta's first status
  follows the API's answer by seconds and the sender writes ``send.accepted``
  within milliseconds of it, so that case is rare, and it costs a link, not a
  record.
- **Off unless tracing is on:** the normalizer builds this only when an
  OpenTelemetry SDK is installed; otherwise no consumer, no memory, no lookups.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from opentelemetry import trace

from mmbus.connection import KafkaConnection
from mmbus.contracts.callback import command_id_from_callback
from mmbus.contracts.codec import DecodeFailure, decode
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import Message
from mmbus.contracts.messaging_events import MarketingLinkClicked, MessageStatus
from mmbus.contracts.send_events import (
    SendAccepted,
    SendAcceptedV1,
    SendAttempted,
    SendIndeterminate,
    SendIndeterminateV1,
)
from mmbus.contracts.topics import Stream, topic_name
from mmbus.tracing import link_to
from services.common.logging import get_logger

log = get_logger("mmbus.normalizer.traces")

# The command label that declares the click tracking token a send expects (the
# projections read the same label to attribute clicks to campaigns).
TRACKING_TOKEN_LABEL = "tracking_token"  # noqa: S105 - a label name, not a secret
SETTLE_S = 1.0

Record: TypeAlias = ConsumerRecord[bytes, bytes]


def learned_keys(event: Message | DecodeFailure) -> list[str]:
    """The keys under which a record's trace context is remembered."""
    if isinstance(event, SendAccepted | SendAcceptedV1):
        return [f"c:{event.data.command_id}", f"w:{event.data.wamid}"]
    # The events written when a send may have reached Meta (and so get statuses).
    if isinstance(event, SendAttempted | SendIndeterminate | SendIndeterminateV1):
        return [f"c:{event.data.command_id}"]
    if isinstance(event, SendTemplate):
        token = event.data.labels.get(TRACKING_TOKEN_LABEL)
        return [f"t:{token}"] if token else []
    return []


def lookups(event: Message) -> list[tuple[str, str]]:
    """(how it joins, key) for an event the normalizer derived, best first; [] if unlinkable."""
    if isinstance(event, MessageStatus):
        found = []
        command_id = command_id_from_callback(event.data.biz_opaque_callback_data)
        if command_id is not None:
            found.append(("biz_opaque_callback_data", f"c:{command_id}"))
        found.append(("wamid", f"w:{event.data.wamid}"))
        return found
    if isinstance(event, MarketingLinkClicked) and event.data.tracking_token:
        return [("tracking_token", f"t:{event.data.tracking_token}")]
    return []


class SendTraces:
    def __init__(
        self,
        settings: KafkaConnection,
        prefix: str,
        *,
        capacity: int,
        lookback_s: float,
        settle_s: float = SETTLE_S,
    ) -> None:
        self.settings = settings
        self.topics = [
            topic_name(Stream.SEND_EVENTS, prefix),
            topic_name(Stream.SEND_COMMANDS, prefix),
        ]
        self.capacity = capacity
        self.lookback_s = lookback_s
        self.settle_s = settle_s
        self._known: OrderedDict[str, trace.SpanContext] = OrderedDict()
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._read = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._known)

    # -- learning
    def learn(self, records: Iterable[Record]) -> None:
        for record in records:
            link = link_to(record.headers)
            if link is None:  # written without tracing: nothing to link to
                continue
            for key in learned_keys(decode(record.value, record.headers, trusted=True)):
                self._known[key] = link.context
                self._known.move_to_end(key)
        while len(self._known) > self.capacity:
            self._known.popitem(last=False)

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            client_id="mmbus-normalizer-traces",
            **self.settings.kafka_client_options(),
        )
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            self._partitions = [
                TopicPartition(topic, p)
                for topic in self.topics
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            consumer.assign(self._partitions)
            since = int((time.time() - self.lookback_s) * 1000)
            found = await consumer.offsets_for_times(dict.fromkeys(self._partitions, since))
            for tp, at in found.items():
                if at is None:  # nothing that recent: only what comes next
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, at.offset)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer

    async def run(self, stop: asyncio.Event) -> None:
        """Learn until ``stop``; :meth:`start` first."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batch.values():
                    self.learn(records)
                async with self._read:
                    self._read.notify_all()
        except Exception as exc:
            # Traces are a diagnostic: the normalizer goes on, linking what is known.
            log.error("send traces stopped learning", error=repr(exc))
        finally:
            self._consumer = None
            await consumer.stop()

    # -- using
    def link_for(self, event: Message) -> trace.Link | None:
        for join, key in lookups(event):
            context = self._known.get(key)
            if context is not None:
                self._known.move_to_end(key)  # in use: keep it longer
                return trace.Link(context, {"mmbus.join": join})
        return None

    def misses(self, events: Sequence[Message]) -> bool:
        """True if some status or click among ``events`` has no known send yet."""
        return any(
            lookups(event) and not any(key in self._known for _, key in lookups(event))
            for event in events
        )

    async def settle(self) -> bool:
        """Until everything written to the send streams before now is learned (at most
        ``settle_s``); False when that time ran out or the learner is not running."""
        consumer = self._consumer
        if consumer is None or not self._partitions:
            return False
        try:
            async with asyncio.timeout(self.settle_s):
                ends = await consumer.end_offsets(self._partitions)
                while True:
                    async with self._read:
                        if await self._reached(consumer, ends):
                            return True
                        await self._read.wait()
        except TimeoutError:
            log.info("send traces still behind; linking what is known", known=len(self))
            return False

    @staticmethod
    async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        # The position, not the last offset seen: transaction markers take offsets too.
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return False
        return True
