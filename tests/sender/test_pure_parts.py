"""The sender's small pure parts: result classification, backoff, commit position."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from mmbus.contracts.commands import SendTemplateData
from services.sender.knowledge import FRESH_ENOUGH, Knowledge
from services.sender.offsets import (
    LedgerCheckpoint,
    PartitionProgress,
    checkpoint_from_metadata,
    checkpoint_metadata,
    rebuild_from,
)
from services.sender.outcomes import Delivered, Fail, Retry, Transport, Unknown, backoff_s, classify
from services.sender.ratelimit import NumberPacer
from tests.waiting import eventually


def _graph(code: int) -> dict[str, object]:
    return {
        "error": {
            "code": code,
            "message": f"(#{code}) x",
            "type": "OAuthException",
            "fbtrace_id": "f",
        }
    }


@pytest.mark.parametrize(
    ("answer", "body", "expected"),
    [
        (
            200,
            {
                "messages": [{"id": "wamid.1", "message_status": "accepted"}],
                "contacts": [{"wa_id": "44"}],
            },
            Delivered,
        ),
        (200, {"unexpected": True}, Unknown),
        (Transport("ConnectError", sent=False), None, Retry),
        (Transport("ReadTimeout", sent=True), None, Unknown),
        (Transport("RemoteProtocolError", sent=True), None, Unknown),
        *[
            (500 if c in (1, 131000) else 400, _graph(c), Retry)
            for c in (1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057, 133004)
        ],
        (503, "<html>Service Unavailable</html>", Retry),
        (502, None, Retry),
        (400, _graph(131049), Fail),
        (400, _graph(131061), Fail),
        (400, _graph(131063), Fail),
        (404, _graph(132001), Fail),
        (401, _graph(190), Fail),
        (400, _graph(100), Fail),
    ],
)
def test_classify(answer: int | Transport, body: object, expected: type) -> None:
    assert type(classify(answer, body)) is expected


@pytest.mark.parametrize(
    ("answer", "body", "cause"),
    [
        (Transport("ReadTimeout", sent=True), None, "read_timeout_after_send"),
        (Transport("RemoteProtocolError", sent=True), None, "connection_lost_after_send"),
        (Transport("ReadError", sent=True), None, "connection_lost_after_send"),
        (200, {"unexpected": True}, "answer_without_message_id"),
    ],
)
def test_ambiguous_outcomes_name_their_cause(
    answer: int | Transport, body: object, cause: str
) -> None:
    outcome = classify(answer, body)
    assert isinstance(outcome, Unknown)
    assert outcome.cause == cause


def test_throttle_and_pair_limit_are_flagged() -> None:
    throttled = classify(400, _graph(130429))
    paired = classify(400, _graph(131056))
    assert isinstance(throttled, Retry)
    assert throttled.throttled
    assert isinstance(paired, Retry)
    assert paired.pair_limited


def test_failures_keep_code_title_and_details() -> None:
    body = {
        "error": {
            "code": 131063,
            "message": "(#131063) m",
            "type": "OAuthException",
            "error_data": {"details": "d"},
            "fbtrace_id": "t",
        }
    }
    result = classify(400, body)
    assert isinstance(result, Fail)
    assert (
        result.error.code,
        result.error.details,
        result.error.fbtrace_id,
        result.error.http_status,
    ) == (131063, "d", "t", 400)


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    waits = [backoff_s(a, base_s=0.1, cap_s=2.0, rng=rng) for a in range(1, 30)]
    assert all(0 <= w <= 2.0 for w in waits)
    assert len(set(waits)) == len(waits)


def test_commit_stops_at_the_lowest_unfinished_offset() -> None:
    progress = PartitionProgress(start=10)
    for offset in (10, 11, 12, 14):  # 13 is a gap
        progress.started(offset)
    assert progress.committable() == 10
    progress.finished(12)
    progress.finished(14)
    assert progress.committable() == 10
    progress.finished(10)
    assert progress.committable() == 11
    progress.finished(11)
    assert progress.committable() == 15
    assert progress.in_flight == 0


async def _settled(condition: Callable[[], bool]) -> None:
    """Until ``condition`` holds (the calls just started have reached their gate);
    polled at a millisecond so the pacer's own timing is left alone."""
    await eventually(condition, within_s=5, poll_s=0.001, what="the calls reaching the gate")


async def test_admit_serves_waiting_calls_in_arrival_order() -> None:
    pacer = NumberPacer(default_rate=50, safety=1.0, window_s=0.1)
    order: list[int] = []

    async def call(i: int) -> None:
        await pacer.admit("n")
        order.append(i)

    calls = []
    for i in range(40):
        calls.append(asyncio.create_task(call(i)))
        # Each call is admitted or in line before the next one starts.
        await _settled(lambda: len(order) + pacer.waiting("n") >= len(calls))
    await asyncio.gather(*calls)
    assert order == list(range(40)), "an early call was overtaken by later ones"


@pytest.mark.parametrize("gate", ["acquire", "admit"])
async def test_the_oldest_command_goes_first_whatever_order_it_arrived_in(gate: str) -> None:
    """A command that arrives late (it waited for a lookup) still goes before younger ones."""
    # No burst allowance: one call makes the number busy.
    pacer = NumberPacer(default_rate=20, safety=1.0, window_s=0.05, burst_s=0.0)
    wait = getattr(pacer, gate)
    await wait("n", 0)  # the number is busy: everyone after this waits in line
    order: list[int] = []

    async def call(priority: int) -> None:
        await wait("n", priority)
        order.append(priority)

    calls = []
    for priority in (5, 6, 7, 1, 8, 2):  # 1 and 2 arrive after younger commands
        calls.append(asyncio.create_task(call(priority)))
        await _settled(lambda: len(order) + pacer.waiting("n") >= len(calls))
    await asyncio.gather(*calls)
    assert order == [1, 2, 5, 6, 7, 8]


async def test_acquire_lets_a_burst_through_then_never_runs_ahead_of_the_rate() -> None:
    """An idle number lets ``burst_s`` of traffic go at once (commands arrive in bursts);
    after that a late timer may release a missed slot with the next one, but the k-th
    slot never comes before k intervals."""
    pacer = NumberPacer(default_rate=100, safety=1.0, burst_s=0.1)
    burst = 10  # 0.1 s at 100/s
    waits = [await pacer.acquire("n") for _ in range(burst)]
    assert waits == [0.0] * burst, "an idle number made the first calls of a burst wait"
    stamps: list[float] = []

    async def call() -> None:
        await pacer.acquire("n")
        stamps.append(time.monotonic())

    await asyncio.gather(*(call() for _ in range(30)))
    stamps.sort()
    for k, t in enumerate(stamps):
        assert t - stamps[0] >= k * 0.01 - 1e-3, k


def _keep_the_loop_busy(seconds: float) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        pass


async def test_a_late_timer_releases_the_slots_it_missed_at_once() -> None:
    """A busy event loop must not cap a number at one or two calls per loop turn."""
    pacer = NumberPacer(default_rate=1000, safety=1.0, burst_s=0.1)
    for _ in range(101):  # its burst allowance used: the next ones wait in line
        await pacer.acquire("n")
    released: list[int] = []

    async def call(i: int) -> None:
        await pacer.acquire("n")
        released.append(i)

    calls = [asyncio.create_task(call(i)) for i in range(60)]
    # Every call in line or, at one slot a millisecond, already let through.
    await _settled(lambda: len(released) + pacer.waiting("n") == 60)
    before = len(released)
    _keep_the_loop_busy(0.04)  # 40 slots' worth, as CPU-bound work under load does
    # The late timer fires once and the calls it lets through resume in the same loop
    # turn: checked every turn, the first release after the stall shows how many that
    # one firing let go (a pacer releasing one call per turn would show one or two).
    await eventually(lambda: len(released) > before, within_s=5, poll_s=0, what="a release")
    caught_up = len(released) - before
    assert caught_up >= 30, f"only {caught_up} of the 40 missed slots were released at once"
    await asyncio.gather(*calls)


async def test_a_cancelled_waiter_does_not_hold_up_the_calls_behind_it() -> None:
    pacer = NumberPacer(default_rate=10, safety=1.0, window_s=0.1)
    await pacer.admit("n")  # the window is now full: the next calls wait
    first = asyncio.create_task(pacer.admit("n"))
    second = asyncio.create_task(pacer.admit("n"))
    await _settled(lambda: pacer.waiting("n") == 2)  # both in line, first ahead
    first.cancel()
    async with asyncio.timeout(5):
        await second
    assert first.cancelled()


async def test_admit_never_lets_a_window_hold_more_than_the_rate() -> None:
    pacer = NumberPacer(default_rate=10, safety=1.0, window_s=0.2)
    stamps: list[float] = []

    async def call() -> None:
        await pacer.admit("n")
        stamps.append(time.monotonic())

    await asyncio.gather(*(call() for _ in range(25)))
    stamps.sort()
    for i, t in enumerate(stamps):
        assert sum(1 for u in stamps[i:] if u - t < 0.2) <= 10


async def test_drain_cancels_commands_that_outlive_the_partition() -> None:
    from services.sender.runtime import drain_tasks

    quick = asyncio.create_task(asyncio.sleep(0))

    async def retrying_forever() -> None:
        await asyncio.Event().wait()

    stuck = asyncio.create_task(retrying_forever())
    cancelled = await drain_tasks([quick, stuck], limit_s=0.05)
    assert cancelled == 1
    assert quick.done()
    assert not quick.cancelled()
    assert stuck.cancelled(), "it must not call the API after its partition moved on"


async def test_drain_lets_a_command_in_its_api_call_finish_the_call_then_stops_it() -> None:
    from services.sender.runtime import drain_tasks
    from services.sender.stopping import Stops

    stops, in_call, answered = Stops(), asyncio.Event(), asyncio.Event()
    steps: list[str] = []

    async def calling() -> None:
        with stops.calling():
            in_call.set()
            await answered.wait()
        steps.append("answer written")
        stops.check()
        steps.append("called again")

    async def backing_off() -> None:
        await asyncio.Event().wait()

    call, backoff = asyncio.create_task(calling()), asyncio.create_task(backing_off())
    await in_call.wait()
    drained = asyncio.create_task(drain_tasks([call, backoff], limit_s=0.01, stops=stops))
    await eventually(backoff.done, within_s=5, what="the back-off cancelled at once")
    assert not call.done(), "a call in progress is not cut short"
    answered.set()
    assert await drained == 2
    assert steps == ["answer written"]
    assert call.cancelled()
    assert backoff.cancelled()


async def test_intake_waiting_for_a_slot_stops_when_the_sender_is_stopped() -> None:
    from services.sender.permits import Permits
    from services.sender.runtime import unless_stopped

    slots, stop, taken = Permits(1), asyncio.Event(), []

    async def intake() -> None:
        for record in range(3):
            await slots.acquire()  # the second waits: nothing releases the first
            taken.append(record)

    stopping = asyncio.create_task(unless_stopped(intake(), stop))
    await eventually(lambda: slots.waiting == 1, within_s=5, what="intake waiting for a slot")
    stop.set()
    await asyncio.wait_for(stopping, 5)
    assert taken == [0]
    assert slots.waiting == 0, "the cancelled wait left no waiter behind"


async def test_an_intake_error_is_raised_not_swallowed() -> None:
    from services.sender.runtime import unless_stopped

    async def failing() -> None:
        raise RuntimeError("broken record")

    with pytest.raises(RuntimeError, match="broken record"):
        await unless_stopped(failing(), asyncio.Event())


# ------------------------------------------------------------ ledger checkpoint
def test_checkpoint_before_anything_started_is_the_position_once_past_the_old_commands() -> None:
    cp = LedgerCheckpoint(earlier_results_from=20, scanned_to=100, commands_end=50)
    assert cp.scan_from(50) == 100, "no command at or after 50 has written anything"
    assert cp.scan_from(40) == 20, "commands 40..49 may have results from an earlier owner"


def test_checkpoint_of_a_fresh_log_follows_the_commands_at_once() -> None:
    cp = LedgerCheckpoint(earlier_results_from=None, scanned_to=0, commands_end=1000)
    for offset in range(3):
        cp.started(offset)
        cp.wrote(2 * offset)
        cp.wrote(2 * offset + 1)
    assert cp.scan_from(2) == 4, "no earlier owner left anything to keep"


def test_checkpoint_covers_an_earlier_owners_result_for_a_command_not_reached_yet() -> None:
    # The earlier owner committed 5 (its checkpoint: 90), wrote command 7's results at
    # 100-101, and died. This owner scanned 90..110; commands then ended at 10.
    cp = LedgerCheckpoint(earlier_results_from=100, scanned_to=110, commands_end=10)
    for offset in (5, 6):
        cp.started(offset)
        cp.wrote(110 + 2 * (offset - 5))
        cp.wrote(111 + 2 * (offset - 5))
    assert cp.scan_from(7) == 100, "command 7's result (at 100) must stay in the next scan"
    cp.started(7)  # skipped: its result is in the ledger
    for offset in (8, 9):
        cp.started(offset)
        cp.wrote(114 + offset)
    assert cp.scan_from(10) == 124, "every command before 10 is committed: nothing older matters"


def test_checkpoint_keeps_the_earliest_start_of_commands_not_yet_committed() -> None:
    cp = LedgerCheckpoint(earlier_results_from=None, scanned_to=200, commands_end=0)
    cp.started(10)  # at 200; still in flight
    cp.wrote(200)
    cp.started(11)  # at 201; finishes first
    cp.wrote(201)
    cp.wrote(202)
    assert cp.scan_from(10) == 200
    assert cp.scan_from(11) == 201
    assert cp.scan_from(12) == 203


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (checkpoint_metadata(1234), 1234),
        (checkpoint_metadata(0), 0),
        ("", None),
        (None, None),
        ("not json", None),
        ('{"send_events_from": -1}', None),
        ('{"send_events_from": true}', None),
        ('{"send_events_from": "12"}', None),
        ("[1, 2]", None),
    ],
)
def test_checkpoint_metadata_round_trip_and_bad_values(
    metadata: str | None, expected: int | None
) -> None:
    assert checkpoint_from_metadata(metadata) == expected


async def test_cancelling_commands_queued_in_one_lane_leaves_the_sender_healthy() -> None:
    """A drain cancels commands in any order. Cancelling one waiting in a lane used to
    cancel the lane future of the command before it, whose clean-up then raised
    InvalidStateError and stopped the sender as if a command had failed."""
    from services.sender.lanes import Lanes

    lanes = Lanes()
    key = ("106540352242922", "447911123456")
    running = asyncio.Event()

    async def stuck() -> None:
        running.set()
        await asyncio.Event().wait()

    async def after() -> None:
        return None

    first = asyncio.create_task(lanes.run(key, stuck))
    await running.wait()
    second = asyncio.create_task(lanes.run(key, after))
    await asyncio.sleep(0)  # the second now waits for the first
    second.cancel()
    first.cancel()
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
    assert len(lanes) == 0, "no lane is left waiting"


@pytest.mark.parametrize(
    ("beginning", "checkpoint", "window_start", "expected", "why"),
    [
        (0, None, 0, 0, "no checkpoint, no window limit: the whole log"),
        (0, None, 500, 0, "no checkpoint (first run, older version): the whole log"),
        (0, 800, 500, 500, "the window reaches further back than the checkpoint"),
        (0, 300, 500, 300, "commands not yet committed reach further back"),
        (0, 800, 900, 800, "nothing in the window before the checkpoint"),
        (400, 300, 100, 400, "retention removed the start: read from what is left"),
        (400, None, 0, 400, "no checkpoint, a truncated log: its beginning"),
    ],
)
def test_rebuild_reads_both_the_uncommitted_results_and_the_window(
    beginning: int, checkpoint: int | None, window_start: int, expected: int, why: str
) -> None:
    got = rebuild_from(beginning=beginning, checkpoint=checkpoint, window_start=window_start)
    assert got == expected, why


def test_a_template_use_is_recorded_once_fresh_and_again_when_older() -> None:
    """The dormancy rule counts days: a use seconds after the last changes nothing."""
    data = SendTemplateData.model_validate(
        {
            "command_id": "0d5a4c3e-4f58-4bb2-9a43-1f4c7d8e9a01",
            "waba_id": "102290129340398",
            "phone_number_id": "106540352242922",
            "to": "447911123456",
            "template": {"name": "spring_sale", "language": {"code": "en_US"}},
        }
    )
    knowledge = Knowledge()
    first = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for at, recorded in [
        (first, first),  # unknown template: recorded
        (first + FRESH_ENOUGH / 2, first),  # within the minute: kept
        (first + FRESH_ENOUGH, first + FRESH_ENOUGH),  # a minute on: recorded
        (first - timedelta(days=1), first - timedelta(days=1)),  # a clock stepped back
    ]:
        knowledge.template_used(data, at)
        state = knowledge.template(data)
        assert state is not None
        assert state.last_used_at == recorded, at
