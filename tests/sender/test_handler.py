"""The command handler with in-memory fakes of its ports: every path, no broker, no HTTP.

Each case scripts what the API answers and checks the events the handler wrote,
in order, plus the calls it made and the waits it asked the clock for.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mmbus.contracts.codec import encode
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import ApiError
from mmbus.folds import TemplateState
from mmbus.publisher import send_template
from services.sender import results
from services.sender.handler import CommandHandler, Ports
from services.sender.knowledge import Knowledge
from services.sender.lanes import Lanes
from services.sender.ledger import Ledger
from services.sender.metrics import SenderMetrics
from services.sender.outcomes import Delivered, Fail, Result, Retry, Unknown
from services.sender.settings import SenderSettings
from tests.projections import events as ev

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OK = Delivered(wamid="wamid.1", wa_id="447911123456", message_status="accepted", http_status=200)


@dataclass
class Record:
    value: bytes | None
    headers: list[tuple[str, bytes]]
    key: bytes | None = b"106540352242922"
    topic: str = "mmbus.send.commands"
    partition: int = 0
    offset: int = 7
    timestamp: int = 1_772_442_000_000


@dataclass
class FakeResults:
    """Writes are durable at once; the ledger learns of them as the Kafka adapter's would."""

    ledger: Ledger
    written: list[Message] = field(default_factory=list)

    async def about(self, event: Message, command: Any) -> None:
        self.written.append(event)
        self.ledger.apply(event)

    async def observed(self, event: Message) -> None:
        self.written.append(event)

    async def dead_letter(self, event: Message) -> None:
        self.written.append(event)


@dataclass
class FakeApi:
    answers: list[Result]
    onboarding: dict[str, Any] | Exception = field(
        default_factory=lambda: {"marketing_messages_onboarding_status": "ONBOARDED"}
    )
    template_answer: dict[str, Any] | None = None
    sends: list[str] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    # Set: each call waits for it to be set (a call in progress); calling says one is.
    hold: asyncio.Event | None = None
    calling: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, provider: Any, number: str, endpoint: Any, body: Any) -> Any:
        self.sends.append(endpoint)
        self.calling.set()
        if self.hold is not None:
            await self.hold.wait()
        return self.answers.pop(0), 0.001

    async def waba_onboarding(self, waba_id: str) -> dict[str, Any]:
        self.lookups.append(f"waba:{waba_id}")
        if isinstance(self.onboarding, Exception):
            raise self.onboarding
        return self.onboarding

    async def template(self, waba_id: str, name: str, language: str) -> dict[str, Any] | None:
        self.lookups.append(f"template:{name}")
        return self.template_answer


@dataclass
class FakePacer:
    calls: list[str] = field(default_factory=list)
    # Set: admit waits for it (a throttled number); admitting says a command is there.
    hold: asyncio.Event | None = None
    admitting: asyncio.Event = field(default_factory=asyncio.Event)

    async def acquire(self, number: str, priority: int = 0) -> float:
        return 0.0

    async def admit(self, number: str, priority: int = 0) -> float:
        self.admitting.set()
        if self.hold is not None:
            await self.hold.wait()
        return 0.0

    def throttled(self, number: str) -> None:
        self.calls.append("throttled")

    def succeeded(self, number: str) -> None:
        self.calls.append("succeeded")


@dataclass
class FakeClock:
    at: datetime = NOW
    slept: list[float] = field(default_factory=list)
    # Set: sleeps wait for it (a back-off in progress); sleeping says one is.
    hold: asyncio.Event | None = None
    sleeping: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - NOW).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.sleeping.set()
        if self.hold is not None:
            await self.hold.wait()
        self.at += timedelta(seconds=seconds)


@dataclass
class World:
    handler: CommandHandler
    results: FakeResults
    api: FakeApi
    pacer: FakePacer
    clock: FakeClock
    knowledge: Knowledge
    ledger: Ledger

    def types(self) -> list[str]:
        return [e.type for e in self.results.written]


def world(answers: list[Result], *, onboarded: bool = True, **settings: Any) -> World:
    ledger, knowledge = Ledger(), Knowledge()
    if onboarded:
        knowledge.apply(ev.terms_signed(ev.WABA, "biz", -86_400))
    results, api, pacer, clock = (
        FakeResults(ledger),
        FakeApi(list(answers)),
        FakePacer(),
        FakeClock(),
    )
    ports = Ports(
        knowledge=knowledge,
        ledger=ledger,
        lanes=Lanes(),
        pacer=pacer,
        api=api,
        out=results,
        clock=clock,
        metrics=SenderMetrics(),
        rng=random.Random(1),
    )
    values = {"sender_backoff_base_s": 0.1, "sender_backoff_cap_s": 1.0, **settings}
    handler = CommandHandler(SenderSettings.model_validate(values), ports)
    return World(handler, results, api, pacer, clock, knowledge, ledger)


def record_of(command: SendTemplate, offset: int = 7) -> Record:
    encoded = encode(command)
    return Record(encoded.value, encoded.headers, offset=offset)


MARKETING = ev.command(1, category="MARKETING")
ERR_5XX = Retry(ApiError(code=None, http_status=500, message="server error"))
THROTTLED = Retry(ApiError(code=130429, http_status=400, message="rate"), throttled=True)
PAIR = Retry(ApiError(code=131056, http_status=400, message="pair"), pair_limited=True)
TERMINAL = Fail(ApiError(code=131026, http_status=400, message="undeliverable"))
AMBIGUOUS = Unknown(detail="read timeout after the request was sent")
RETRIED = ("send.attempted", "send.attempt_failed")


@pytest.mark.parametrize(
    ("answers", "expected", "sends"),
    [
        ([OK], ["send.attempted", "send.accepted"], 1),
        ([ERR_5XX, OK], [*RETRIED, "send.attempted", "send.accepted"], 2),
        ([THROTTLED, OK], [*RETRIED, "send.attempted", "send.accepted"], 2),
        ([PAIR, OK], [*RETRIED, "send.attempted", "send.accepted"], 2),
        ([TERMINAL], ["send.attempted", "send.failed"], 1),
        ([AMBIGUOUS], ["send.attempted", "send.indeterminate"], 1),
        ([ERR_5XX, ERR_5XX, ERR_5XX], [*RETRIED, *RETRIED, *RETRIED, "send.failed"], 3),
    ],
    ids=["accepted", "retried", "throttled", "pair-limited", "failed", "ambiguous", "exhausted"],
)
async def test_each_api_answer_leads_to_its_events(
    answers: list[Result], expected: list[str], sends: int
) -> None:
    w = world(answers, sender_max_attempts=3)
    await w.handler.handle(record_of(MARKETING), 0)
    assert w.types() == expected
    assert w.api.sends == ["marketing_messages"] * sends
    attempts = [e.data.attempt for e in w.results.written if e.type == "send.attempted"]
    assert attempts == list(range(1, sends + 1))
    last = w.results.written[-1]
    assert last.data.command_id == MARKETING.data.command_id
    if last.type == "send.failed":
        assert last.data.retryable == (answers[-1] is not TERMINAL)
    ended = [e for e in w.results.written if e.type == "send.attempt_failed"]
    for event, answer in zip(ended, answers, strict=False):
        assert isinstance(answer, Retry)
        assert event.data.reason == "retryable_error"
        assert event.data.error == answer.error, "the log says what each attempt was answered"
    if ended:
        waited = None if last.type == "send.failed" else pytest.approx(w.clock.slept[-1], abs=1e-3)
        assert ended[-1].data.retry_in_s == waited


async def test_a_command_whose_attempts_all_ended_without_a_message_is_resumed() -> None:
    w = world([OK])
    w.ledger.apply(ev.attempted(1))  # the previous owner got a 5xx, then lost the partition
    w.ledger.apply(results.attempt_failed(MARKETING, ev.attempted(1), NOW, error=ERR_5XX.error))
    await w.handler.handle(record_of(MARKETING), 0)
    assert w.types() == ["send.attempted", "send.accepted"]
    assert w.results.written[0].data.attempt == 2
    assert w.api.sends == ["marketing_messages"]


async def test_a_command_stopped_in_its_call_writes_the_answer_and_makes_no_other_call() -> None:
    w = world([ERR_5XX, OK])
    w.api.hold = asyncio.Event()
    task = asyncio.create_task(w.handler.handle(record_of(MARKETING), 0))
    await w.api.calling.wait()
    w.handler.stops.stop(task)  # the drain ran out: the partition moves on
    assert not task.done()
    w.api.hold.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert w.types() == list(RETRIED), "the answer is in the log, and nothing after it"
    assert w.api.sends == ["marketing_messages"]
    assert not w.ledger.get(MARKETING.data.command_id).open_attempt


async def test_a_command_stopped_in_its_call_that_succeeds_writes_its_result() -> None:
    w = world([OK])
    w.api.hold = asyncio.Event()
    task = asyncio.create_task(w.handler.handle(record_of(MARKETING), 0))
    await w.api.calling.wait()
    w.handler.stops.stop(task)
    w.api.hold.set()
    await task
    assert w.types() == ["send.attempted", "send.accepted"]


async def test_a_command_stopped_before_its_call_closes_its_attempt_and_is_resumed() -> None:
    w = world([OK])
    w.pacer.hold = asyncio.Event()
    task = asyncio.create_task(w.handler.handle(record_of(MARKETING), 0))
    await w.pacer.admitting.wait()  # attempt recorded, waiting for the number's rate
    w.handler.stops.stop(task)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert w.types() == list(RETRIED)
    assert w.results.written[1].data.reason == "stopped_before_call"
    assert w.results.written[1].data.error is None
    assert w.api.sends == []
    w.pacer.hold.set()
    await w.handler.handle(record_of(MARKETING), 1)  # the partition's next reading
    assert w.types() == [*RETRIED, "send.attempted", "send.accepted"]
    assert w.api.sends == ["marketing_messages"]


async def test_a_command_stopped_in_its_back_off_leaves_no_open_attempt() -> None:
    w = world([ERR_5XX, OK])
    w.clock.hold = asyncio.Event()
    task = asyncio.create_task(w.handler.handle(record_of(MARKETING), 0))
    await w.clock.sleeping.wait()
    w.handler.stops.stop(task)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert w.types() == list(RETRIED)
    assert not w.ledger.get(MARKETING.data.command_id).open_attempt
    assert w.api.sends == ["marketing_messages"]


async def test_waits_follow_the_kind_of_retry() -> None:
    throttled = world([THROTTLED, OK])
    await throttled.handler.handle(record_of(MARKETING), 0)
    assert throttled.pacer.calls == ["throttled", "succeeded"]
    pair = world([PAIR, OK], sender_pair_window_s=6.0)
    await pair.handler.handle(record_of(MARKETING), 0)
    assert pair.clock.slept, "a pair limit waits"
    assert pair.clock.slept[0] >= 6.0, "a pair limit waits out the window"


async def test_an_ambiguous_answer_is_never_resent() -> None:
    w = world([AMBIGUOUS, OK])
    await w.handler.handle(record_of(MARKETING), 0)
    assert w.api.sends == ["marketing_messages"]
    assert w.results.written[-1].data.cause == "read_timeout_after_send"


async def test_a_redelivered_command_with_a_result_is_skipped() -> None:
    w = world([OK, OK])
    await w.handler.handle(record_of(MARKETING), 0)
    await w.handler.handle(record_of(MARKETING, offset=8), 1)
    assert w.types() == ["send.attempted", "send.accepted"]
    assert w.api.sends == ["marketing_messages"]


async def test_a_redelivered_command_with_an_open_attempt_is_reported_not_resent() -> None:
    w = world([OK])
    w.ledger.apply(ev.attempted(1))  # the previous owner died after the attempt record
    await w.handler.handle(record_of(MARKETING), 0)
    assert w.types() == ["send.indeterminate"]
    assert w.results.written[0].data.cause == "attempt_without_result_on_restart"
    assert w.api.sends == []


async def test_an_unknown_waba_is_looked_up_once_and_recorded_before_the_send() -> None:
    w = world([OK, OK], onboarded=False)
    await w.handler.handle(record_of(MARKETING), 0)
    await w.handler.handle(record_of(ev.command(2, category="MARKETING"), offset=8), 1)
    assert w.api.lookups == [f"waba:{ev.WABA}"]
    assert w.types() == [
        "account.onboarding_observed",
        "send.attempted",
        "send.accepted",
        "send.attempted",
        "send.accepted",
    ]


async def test_a_failing_lookup_fails_the_command_as_retryable() -> None:
    w = world([OK], onboarded=False)
    w.api.onboarding = ConnectionError("graph unreachable")
    await w.handler.handle(record_of(MARKETING), 0)
    assert w.types() == ["send.failed"]
    assert w.results.written[0].data.retryable is True
    assert "lookup failed" in (w.results.written[0].data.error.message or "")
    assert len(w.api.lookups) == 3, "asked three times, with backoff, then gave up"
    assert w.api.sends == []
    failed = w.handler.ports.metrics.registry.get_sample_value(
        "mmbus_sender_sends_total",
        {"route": "none", "outcome": "failed", "reason": "waba_onboarding_lookup"},
    )
    assert failed == 1.0, "a send lost to a failed look-up has its series"


async def test_a_template_without_category_is_looked_up_and_an_unknown_one_fails() -> None:
    known = world([OK])
    known.api.template_answer = {"id": "9", "category": "UTILITY", "status": "APPROVED"}
    await known.handler.handle(record_of(ev.command(1)), 0)
    assert known.types() == ["template.category_observed", "send.attempted", "send.accepted"]
    assert known.api.sends == ["messages"], "a UTILITY template goes to /messages"
    unknown = world([OK])
    await unknown.handler.handle(record_of(ev.command(1)), 0)
    assert unknown.types() == ["send.failed"]
    assert unknown.api.lookups == ["template:spring_sale"], "not asked again: it will not help"


async def test_a_new_template_is_held_for_its_sync_then_sent() -> None:
    w = world([OK], sender_template_sync_guard="hold")
    key = f"{ev.WABA}:spring_sale"
    w.knowledge.templates[key] = TemplateState(
        ev.WABA, "spring_sale", "MARKETING", "APPROVED", approved_at=NOW - timedelta(minutes=4)
    )
    await w.handler.handle(record_of(MARKETING), 0)
    assert w.types() == ["send.attempted", "send.accepted"]
    assert w.clock.slept[0] == pytest.approx(360, abs=1), "held until 10 minutes after approval"


async def test_marketing_to_a_us_number_is_suppressed_without_a_call() -> None:
    w = world([OK])
    command = send_template(
        command_id=ev.cid(1),
        waba_id=ev.WABA,
        phone_number_id=ev.NUMBER,
        to="+1 202 555 0143",
        template_name="spring_sale",
        language="en_US",
        category="MARKETING",
        source="test",
    )
    await w.handler.handle(record_of(command), 0)
    assert w.types() == ["send.suppressed"]
    assert w.api.sends == []


async def test_an_unreadable_record_is_dead_lettered_and_rejected_once() -> None:
    w = world([])
    bad = Record(b'{"type": "send.template", "version": 1, "data": {"command_id": "x"}}', [])
    await w.handler.handle(bad, 0)
    await w.handler.handle(bad, 1)  # read again: another group, or a restart
    assert w.types() == ["dead_letter.recorded", "send.rejected"]
    rejected = w.results.written[1]
    assert rejected.data.command_id == "x"
    assert rejected.data.reason == "invalid_message"


def test_the_handler_imports_no_kafka_client() -> None:
    probe = (
        "import sys, services.sender.handler;"
        "print(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('aiokafka', 'aiohttp', 'httpx')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
