"""One command, from its record to its result event, through ports only.

``CommandHandler.handle`` decodes the record, consults the ledger (skip a
command with a result, report one with an open attempt), queues it in its
recipient's lane, decides the route (looking up what the log does not know,
holding for a template sync), paces, records the attempt durably, calls the
API and writes the result. Retries follow the error's class; an answer that
may or may not have been accepted is reported as ``send.indeterminate``, never
resent. Kafka, HTTP and the clock are behind :mod:`services.sender.ports`, so
this module imports neither aiokafka nor an HTTP client.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from mmbus.contracts.codec import DecodeFailure, decode
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.send_events import ApiError, Decision
from mmbus.contracts.topics import Stream, topic_name
from services.common.logging import get_logger
from services.sender import fast_events, results, spans
from services.sender.knowledge import Knowledge
from services.sender.lanes import Lanes
from services.sender.ledger import Ledger
from services.sender.lookups import Lookups
from services.sender.metrics import SenderMetrics
from services.sender.outcomes import (
    Delivered,
    Fail,
    Retry,
    Unknown,
    backoff_s,
    pair_wait_s,
)
from services.sender.permits import Permits
from services.sender.ports import Api, Clock, CommandRecord, Pacer, Results
from services.sender.routing import Hold, LookUp, Reject, RoutingPolicy, Send, Suppress, route
from services.sender.settings import SenderSettings
from services.sender.spans import span
from services.sender.stopping import Stops
from services.sender.unreadable import reject_unreadable

log = get_logger("mmbus.sender")
DECISION_ROUNDS = 4  # look-ups and holds before a decision; each settles one unknown
NO_ATTEMPT = ApiError(message="no attempt made")  # frozen: one for all, not one per send


@dataclass(frozen=True)
class Ports:
    knowledge: Knowledge
    ledger: Ledger
    lanes: Lanes
    pacer: Pacer
    api: Api
    out: Results
    clock: Clock
    metrics: SenderMetrics
    rng: random.Random


class CommandHandler:
    def __init__(self, settings: SenderSettings, ports: Ports) -> None:
        self.settings = settings
        self.ports = ports
        self.policy = RoutingPolicy(
            settings.sender_template_sync_guard,
            hold_max=timedelta(seconds=settings.sender_hold_max_s),
        )
        self.lookups = Lookups(ports.api, ports.out, ports.knowledge, ports.clock, ports.rng)
        # An attempt is recorded only once a connection is free for its call. Recorded
        # first, a command then queued for one of the pool's connections: a restart
        # found it open and reported it indeterminate although it never left (the
        # chaos run saw ~1,400 per killed sender, 2,000 in flight for 64 connections).
        self.calls = Permits(settings.sender_http_connections)
        self.dead_letter_topic = topic_name(Stream.DEAD_LETTERS, settings.topic_prefix)
        # Stopping a command (revocation, shutdown) never cuts an API call short.
        self.stops = Stops()

    async def handle(self, record: CommandRecord, order: int) -> None:
        """Take one command record to its terminal event; ``order`` is its place in intake."""
        message = decode(record.value, record.headers)
        if not isinstance(message, SendTemplate):
            failure = (
                message
                if isinstance(message, DecodeFailure)
                else DecodeFailure(
                    "unknown_type", f"{message.type} is not a command", message_type=message.type
                )
            )
            p = self.ports
            await reject_unreadable(
                record,
                failure,
                ledger=p.ledger,
                out=p.out,
                clock=p.clock,
                metrics=p.metrics,
                consumer=self.settings.sender_group_id,
                dead_letter_topic=self.dead_letter_topic,
            )
            return
        if not spans.command_traced():
            await self._handle(record, message, order)
            return
        with spans.process(record.headers, record.offset, message.data.command_id):
            await self._handle(record, message, order)

    async def _handle(self, record: CommandRecord, message: SendTemplate, order: int) -> None:
        data = message.data
        ledger = self.ports.ledger
        entry = ledger.get(data.command_id)
        if entry.terminal or entry.in_flight:
            self.ports.metrics.duplicates.inc()
            log.info("duplicate command skipped", command_id=data.command_id, offset=record.offset)
            return
        if entry.open_attempt and self.settings.sender_indeterminate_policy == "do_not_resend":
            event = results.open_attempt_found(message, entry.attempts, self.ports.clock.now())
            await self.ports.out.about(event, record)
            return
        entry.in_flight = True
        try:
            await self.ports.lanes.run(
                (data.phone_number_id, data.to), lambda: self._decide(record, message, order)
            )
        finally:
            entry.in_flight = False

    async def _decide(self, record: CommandRecord, command: SendTemplate, order: int) -> None:
        with span("send.decide") as decided:
            outcome = await self._decision(record, command)
            if outcome is None:
                return
            decided.set_attribute("mmbus.decision", type(outcome).__name__.lower())
        clock = self.ports.clock
        if isinstance(outcome, Suppress):
            self.ports.metrics.count(None, "suppressed", outcome.rule)
            spans.outcome("send.suppressed", reason=outcome.rule)
            await self.ports.out.about(results.suppressed(command, outcome, clock.now()), record)
        elif isinstance(outcome, Reject):
            self.ports.metrics.count(None, "rejected", outcome.reason)
            spans.outcome("send.rejected", reason=outcome.reason)
            await self.ports.out.about(results.rejected(command, outcome, clock.now()), record)
        else:
            spans.routed(outcome.endpoint)
            await self._send(record, command, outcome, order)

    async def _decision(
        self, record: CommandRecord, command: SendTemplate
    ) -> Send | Suppress | Reject | None:
        """Route, looking up and holding as needed; None when it failed (already reported)."""
        data, clock, knowledge = command.data, self.ports.clock, self.ports.knowledge
        held_since: datetime | None = None
        for _ in range(DECISION_ROUNDS):
            outcome = route(
                data,
                knowledge.waba(data),
                knowledge.template(data),
                knowledge.recipient(data),
                self.policy,
                clock.now(),
                held_since,
            )
            if isinstance(outcome, LookUp):
                error = await self.lookups.answer(outcome.what, command)
                if error is not None:
                    self.ports.metrics.count(None, "failed", f"{outcome.what}_lookup")
                    decision = Decision(endpoint=None, reasons=(error.message or "",))
                    await self._fail(record, command, decision, error, 0, retryable=True)
                    return None
                continue
            if isinstance(outcome, Hold):
                held_since = held_since or clock.now()
                wait = (outcome.until - clock.now()).total_seconds()
                log.info(
                    "holding for template sync",
                    command_id=data.command_id,
                    seconds=round(wait, 1),
                    why=outcome.detail,
                )
                await clock.sleep(max(0.0, wait))
                continue
            break
        else:
            self.ports.metrics.count(None, "failed", "undecided")
            decision = Decision(endpoint=None, reasons=("lookups did not settle",))
            error = ApiError(message="could not decide")
            await self._fail(record, command, decision, error, 0, retryable=True)
            return None
        assert isinstance(outcome, Send | Suppress | Reject)
        return outcome

    async def _send(
        self, record: CommandRecord, command: SendTemplate, plan: Send, order: int
    ) -> None:
        data, p, settings = command.data, self.ports, self.settings
        lane = (data.phone_number_id, data.to)
        earlier = p.ledger.get(data.command_id).attempts
        last_error = NO_ATTEMPT
        attempt = earlier
        for attempt in range(earlier + 1, earlier + 1 + settings.sender_max_attempts):
            with span("send.pace") as pacing:
                depth = p.metrics.waiting(data.phone_number_id)
                depth.inc()
                try:
                    waited = await p.pacer.acquire(data.phone_number_id, order)
                finally:
                    depth.dec()
                p.metrics.limiter_wait.observe(waited)
                gap = p.lanes.pair_gap(lane, p.clock.monotonic(), settings.sender_pair_window_s)
                if gap > 0:
                    await p.clock.sleep(gap)
                pacing.set_attribute("mmbus.waited_s", waited + gap)
            async with self.calls:
                with spans.attempt(attempt):
                    tried = fast_events.attempted(command, attempt, plan.decision, p.clock.now())
                    try:
                        await p.out.about(tried, record)  # durable before the call
                        waited = await p.pacer.admit(data.phone_number_id, order)
                    except asyncio.CancelledError:
                        # Stopped before calling: say so, or the partition's next owner
                        # finds the attempt open and reports a send that never left.
                        closed = results.attempt_failed(command, tried, p.clock.now())
                        await p.out.about(closed, record)
                        raise
                    p.metrics.limiter_wait.observe(waited)
                    requested_at = p.clock.now()
                    with spans.http_call(data, plan) as call, self.stops.calling():
                        result, seconds = await p.api.send(
                            data.provider, data.phone_number_id, plan.endpoint, plan.body
                        )
                        spans.record_answer(call, result)
            p.metrics.call_took(plan.endpoint, seconds)
            if isinstance(result, Delivered):
                p.pacer.succeeded(data.phone_number_id)
                p.lanes.sent(lane, p.clock.monotonic())
                answered_at = p.clock.now()  # one reading for both: the same moment
                p.knowledge.template_used(data, answered_at)
                p.metrics.count(plan.endpoint, "accepted")
                done = fast_events.accepted(command, tried, result, requested_at, answered_at)
                spans.outcome("send.accepted")
                await p.out.about(done, record)
                return
            if isinstance(result, Unknown):
                p.metrics.count(plan.endpoint, "indeterminate")
                log.warning("ambiguous send", command_id=data.command_id, detail=result.detail)
                event = results.indeterminate(command, tried, result, p.clock.now())
                spans.outcome("send.indeterminate", reason=result.cause)
                await p.out.about(event, record)
                return
            if isinstance(result, Fail):
                p.metrics.failed_with(plan.endpoint, "failed", result.error)
                await self._fail(
                    record, command, plan.decision, result.error, attempt, retryable=False
                )
                return
            last_error = result.error
            p.metrics.failed_with(plan.endpoint, "retried", result.error)
            last = attempt == earlier + settings.sender_max_attempts
            wait = None if last else self._retry_wait(result, attempt - earlier)
            ended = results.attempt_failed(
                command, tried, p.clock.now(), error=result.error, retry_in_s=wait
            )
            await p.out.about(ended, record)
            self.stops.check()  # asked to stop during the call: the next owner goes on
            if result.throttled:
                p.pacer.throttled(data.phone_number_id)
            if wait is not None:
                await p.clock.sleep(wait)
        p.metrics.failed_with(plan.endpoint, "failed", last_error)
        await self._fail(record, command, plan.decision, last_error, attempt, retryable=True)

    def _retry_wait(self, result: Retry, tries: int) -> float:
        settings = self.settings
        if result.pair_limited:
            return pair_wait_s(tries, settings.sender_pair_window_s)
        return backoff_s(
            tries,
            base_s=settings.sender_backoff_base_s,
            cap_s=settings.sender_backoff_cap_s,
            rng=self.ports.rng,
        )

    async def _fail(
        self,
        record: CommandRecord,
        command: SendTemplate,
        decision: Decision,
        error: ApiError,
        attempt: int,
        *,
        retryable: bool,
    ) -> None:
        event = results.failed(
            command, decision, error, attempt, self.ports.clock.now(), retryable=retryable
        )
        spans.outcome("send.failed", reason=str(error.code) if error.code is not None else None)
        await self.ports.out.about(event, record)
