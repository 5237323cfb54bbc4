"""The sender's promises under load, failure and a crash, on the real broker and the simulator."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from bench.harness import serve
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import Stream
from services.common.ports import free_port
from services.common.settings import CommonSettings
from services.sender.ledger import TERMINAL_TYPES
from services.simulator.world import PhoneNumber, Portfolio, Template, Waba, World
from tests.sender.support import (
    calls_per_number,
    command,
    max_in_any_second,
    publish,
    read_stream,
    read_to_end,
    recipient_order,
    simulator_sends,
    terminal_by_command,
    terminals_cover,
)
from tests.waiting import eventually

WABA = "102290129340398"
NUMBERS = [f"1065403522429{i:02d}" for i in range(5)]
LIMIT_PER_S = 80
LOG_POLL_S = 0.05


def load_world() -> World:
    return World(
        portfolios=(Portfolio(id="1029384756473829"),),
        wabas=(Waba(id=WABA, business_id="1029384756473829", onboarding_status="ONBOARDED"),),
        phone_numbers=tuple(
            PhoneNumber(
                id=n, waba_id=WABA, display_phone_number="15550001111", throughput_per_s=LIMIT_PER_S
            )
            for n in NUMBERS
        ),
        templates=(
            Template(waba_id=WABA, name="spring_sale", language="en_US", category="MARKETING"),
            Template(waba_id=WABA, name="order_update", language="en_US", category="UTILITY"),
        ),
        access_tokens=frozenset({"sim-token"}),
        pair_limit_s=6.0,
    )


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[tuple[str, httpx.Client]]:
    """The simulator in a process of its own, so its clock sees calls as they arrive."""
    seed = tmp_path / "world.yaml"
    seed.write_text(yaml.safe_dump(load_world().model_dump(mode="json")))
    port = free_port()
    with (
        serve(
            ["-m", "services.cli", "simulator", "--port", str(port), "--seed", str(seed)],
            port,
            "/_admin/health",
        ) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        yield base, client


def campaign(total: int, per_recipient: int) -> list[SendTemplate]:
    """``total`` commands over the five numbers; each recipient gets ``per_recipient`` in a row."""
    out = []
    for i in range(total):
        recipient = i // per_recipient
        number = NUMBERS[recipient % len(NUMBERS)]
        template = ("spring_sale", "MARKETING") if i % 3 else ("order_update", "UTILITY")
        out.append(
            command(
                number, f"447{700000000 + recipient}", template[0], template[1], campaign_id="load"
            )
        )
    return out


def assert_rate_kept(sim: httpx.Client, events: list[Message]) -> None:
    """The limit holds where the sender controls it (when each call left), and the API agrees.

    The simulator stamps a call when it gets the CPU; on a loaded two-core machine
    that bunches its clock, so the strict window check uses the call times the
    sender recorded in send.accepted.
    """
    left: dict[str, list[float]] = {}
    for e in events:
        if e.type == "send.accepted":
            assert e.data.requested_at is not None
            left.setdefault(e.data.phone_number_id, []).append(e.data.requested_at.timestamp())
    for number, times in left.items():
        assert max_in_any_second(times) <= LIMIT_PER_S, number
    for number, calls in calls_per_number(sim).items():
        refused = [c for c in calls if c["outcome"] == "rejected" and c.get("code") == 130429]
        assert not refused, f"the API's own limiter refused calls of {number}"


def assert_order_kept(sim: httpx.Client, commands: list[SendTemplate]) -> None:
    expected: dict[tuple[str, str], list[str]] = {}
    for c in commands:
        expected.setdefault((c.data.phone_number_id, c.data.to), []).append(c.data.command_id)
    for lane, seen in recipient_order(sim).items():
        assert seen == [cid for cid in expected[lane] if cid in set(seen)], lane


async def test_ten_thousand_commands_for_five_numbers(
    kafka_settings: CommonSettings, tmp_path: Path, simulator: tuple[str, httpx.Client]
) -> None:
    url, sim = simulator
    commands = campaign(10_000, per_recipient=2)
    await publish(kafka_settings, commands)
    ids = {c.data.command_id for c in commands}
    with stopped_at_end(
        _sender_process(kafka_settings, url, tmp_path, MMBUS_SENDER_MAX_IN_FLIGHT="4000")
    ):
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids), deadline_s=240
        )
    terminals = terminal_by_command(events)
    assert set(terminals) == ids
    assert set(terminals.values()) == {1}, "exactly one terminal event per command"
    accepted = {e.data.command_id for e in events if e.type == "send.accepted"}
    assert accepted == ids
    sends = simulator_sends(sim)
    assert set(sends) == accepted
    assert set(sends.values()) == {1}, "each accepted message reached the API exactly once"
    assert_rate_kept(sim, events)
    assert_order_kept(sim, commands)


async def test_thirty_percent_failures_still_all_accepted(
    kafka_settings: CommonSettings, tmp_path: Path, simulator: tuple[str, httpx.Client]
) -> None:
    url, sim = simulator
    sim.put(
        "/_admin/faults",
        json={
            "error_rates": {"131000": 0.08, "1": 0.04, "133004": 0.04, "130429": 0.04},
            "http_5xx_rate": 0.10,
        },
    ).raise_for_status()
    commands = campaign(600, per_recipient=2)
    await publish(kafka_settings, commands)
    ids = {c.data.command_id for c in commands}
    sender = _sender_process(
        kafka_settings,
        url,
        tmp_path,
        MMBUS_SENDER_MAX_ATTEMPTS="20",
        MMBUS_SENDER_BACKOFF_BASE_S="0.05",
        MMBUS_SENDER_BACKOFF_CAP_S="1",
    )
    with stopped_at_end(sender):
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids), deadline_s=240
        )
    final = {e.data.command_id: e.type for e in events if e.type != "send.attempted"}
    assert set(final.values()) == {"send.accepted"}
    assert set(terminal_by_command(events).values()) == {1}
    calls = [c for cs in calls_per_number(sim).values() for c in cs]
    failed = sum(c["outcome"] != "accepted" for c in calls)
    assert 0.2 < failed / len(calls) < 0.4, "the fault plan really failed about 30% of calls"
    assert set(simulator_sends(sim).values()) == {1}
    assert_rate_kept(sim, events)
    assert_order_kept(sim, commands)


def _sender_process(
    kafka: CommonSettings, url: str, logs: Path, **extra: str
) -> subprocess.Popen[bytes]:
    """A sender in its own process, as in production (and so its timing is its own)."""
    env = {
        **os.environ,
        "MMBUS_KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
        "MMBUS_TOPIC_PREFIX": kafka.topic_prefix,
        "MMBUS_PARTITIONS": str(kafka.partitions),
        "MMBUS_META_BASE_URL": url,
        "MMBUS_META_ACCESS_TOKEN": "sim-token",
        "MMBUS_SENDER_GROUP_ID": f"{kafka.topic_prefix}sender",
        "MMBUS_SENDER_HTTP_PORT": "0",
        "MMBUS_SENDER_RATE_PER_S": str(LIMIT_PER_S),
        "MMBUS_SENDER_COMMIT_INTERVAL_S": "0.05",
        "MMBUS_LOG_FORMAT": "json",
        "MMBUS_LOG_LEVEL": "INFO",
        **extra,
    }
    # The child keeps its own copy of the handle; its log stays beside the test's other files.
    with (logs / f"sender-{time.monotonic_ns()}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "sender"], env=env, stderr=log
        )


async def test_kill_9_mid_run_loses_nothing_and_sends_nothing_twice(
    kafka_settings: CommonSettings, tmp_path: Path, simulator: tuple[str, httpx.Client]
) -> None:
    url, sim = simulator
    commands = campaign(3000, per_recipient=1)
    await publish(kafka_settings, commands)
    ids = {c.data.command_id for c in commands}

    # No idempotency window: the restart rebuilds its ledger from the checkpoint its
    # predecessor committed alone, so the checkpoint is what keeps the promise here.
    checkpoint_only = {"MMBUS_SENDER_IDEMPOTENCY_WINDOW_S": "0"}
    first = _sender_process(kafka_settings, url, tmp_path, **checkpoint_only)
    try:
        # Let it get well into the run, then kill it without any chance to clean up.
        await read_stream(
            kafka_settings,
            Stream.SEND_EVENTS,
            until=lambda es: len(terminal_by_command(es)) >= 600,
            deadline_s=120,
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The process is dead: everything it ever got acknowledged is below the end offsets now.
    snapshot = await read_to_end(kafka_settings, Stream.SEND_EVENTS)
    open_at_kill = {e.data.command_id for e in snapshot if e.type == "send.attempted"} - set(
        terminal_by_command(snapshot)
    )
    done_at_kill = set(terminal_by_command(snapshot))
    assert 0 < len(done_at_kill) < len(ids), "the kill came mid-run"

    second = _sender_process(kafka_settings, url, tmp_path, **checkpoint_only)
    try:
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids), deadline_s=240
        )
    finally:
        second.terminate()
        assert second.wait(timeout=60) == 0, "SIGTERM ends the sender cleanly"

    terminals = terminal_by_command(events)
    assert set(terminals) == ids, "no command lost"
    twice = [cid for cid, n in terminals.items() if n > 1]
    assert not twice, [
        (
            e.type,
            str(e.time)[11:23],
            getattr(e.data, "attempt", None),
            getattr(e.data, "cause", None),
        )
        for e in events
        if e.data.command_id == twice[0]
    ]
    indeterminate = {e.data.command_id for e in events if e.type == "send.indeterminate"}
    assert indeterminate <= open_at_kill, "only commands in flight at the kill are indeterminate"
    sends = simulator_sends(sim)
    assert all(n == 1 for n in sends.values()), "no message sent twice"
    accepted = {e.data.command_id for e in events if e.type == "send.accepted"}
    assert accepted <= set(sends)
    assert set(sends) - accepted <= indeterminate, (
        "a send without send.accepted is reported indeterminate"
    )
    restarted = orjson.loads(_ledger_rebuilds(tmp_path)[1][0])
    assert restarted["checkpoints"], "the predecessor committed checkpoints; the restart used them"
    assert all(
        restarted["scanned_from"][p] == offset for p, offset in restarted["checkpoints"].items()
    ), "with no idempotency window the rebuild starts exactly at each checkpoint"
    # The commits moved while the first sender worked (oldest commands first), so the
    # restart read the tail of the send events, not all of them. Not every partition's
    # need have moved: one of its first commands still unfinished at the kill (retrying,
    # backing off) keeps the partition's checkpoint at that command's first event, as
    # it must (seen since the ledger rebuild got faster and the first calls came sooner).
    assert any(offset > 0 for offset in restarted["checkpoints"].values()), restarted
    assert restarted["events"] < len(snapshot), restarted


def _has_logged(logs: Path, index: int, text: str, times: int) -> bool:
    files = sorted(logs.glob("sender-*.log"))  # named by start time
    return len(files) > index and files[index].read_text().count(text) >= times


async def _logged(
    logs: Path, index: int, text: str, *, times: int = 1, deadline_s: float = 120
) -> None:
    """Until the ``index``-th sender (in start order) has logged ``text`` ``times`` times."""
    # The condition is in another process's log file: nothing to await but the file.
    await eventually(
        lambda: asyncio.to_thread(_has_logged, logs, index, text, times),
        within_s=deadline_s,
        poll_s=LOG_POLL_S,
        what=f"sender {index} logging {text!r} {times} time(s)",
    )


def _ledger_rebuilds(logs: Path) -> list[list[str]]:
    """Per sender (in start order), its "ledger rebuilt" log lines: one per assignment."""
    return [
        [line for line in log.read_text().splitlines() if "ledger rebuilt" in line]
        for log in sorted(logs.glob("sender-*.log"))  # named by start time
    ]


@contextmanager
def stopped_at_end(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_rebalance_mid_retry_sends_nothing_twice(
    kafka_settings: CommonSettings, tmp_path: Path, simulator: tuple[str, httpx.Client]
) -> None:
    """A second sender joins mid-run and the first leaves mid-run, while calls fail and retry.

    Partitions move twice with commands in backoff; each command must still end
    once, and the API must see each message once.
    """
    url, sim = simulator
    sim.put(
        "/_admin/faults", json={"error_rates": {"131000": 0.15}, "http_5xx_rate": 0.10}
    ).raise_for_status()
    commands = campaign(1500, per_recipient=1)
    await publish(kafka_settings, commands)
    ids = {c.data.command_id for c in commands}
    retrying = {
        "MMBUS_SENDER_MAX_ATTEMPTS": "20",
        "MMBUS_SENDER_BACKOFF_BASE_S": "0.1",
        "MMBUS_SENDER_BACKOFF_CAP_S": "1",
        # Slow enough (about 140 sends/s) that commands are still queued and retrying
        # when a second process has started and joined the group.
        "MMBUS_SENDER_RATE_PER_S": "30",
        # Ledgers rebuilt from the committed checkpoints alone (no idempotency window).
        "MMBUS_SENDER_IDEMPOTENCY_WINDOW_S": "0",
    }

    def finished(n: int) -> Callable[[list[Message]], bool]:
        return lambda es: len(terminal_by_command(es)) >= n

    first = _sender_process(kafka_settings, url, tmp_path, **retrying)
    second = None
    try:
        await read_stream(kafka_settings, Stream.SEND_EVENTS, until=finished(300), deadline_s=120)
        second = _sender_process(kafka_settings, url, tmp_path, **retrying)
        await _logged(tmp_path, 1, "ledger rebuilt")  # the group rebalanced onto both
        # ...and the first has rebuilt what it kept: rebuilds run beside the consumer, so
        # the second's may finish first, and stopping the first then cut its own short.
        await _logged(tmp_path, 0, "ledger rebuilt", times=2)
        first.terminate()  # leaves the group: its partitions move to the second
        assert first.wait(timeout=60) == 0
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids), deadline_s=240
        )
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    terminals = terminal_by_command(events)
    assert set(terminals) == ids, "no command lost"
    assert set(terminals.values()) == {1}, "exactly one result per command"
    outcomes = {e.data.command_id: e.type for e in events if e.type in TERMINAL_TYPES}
    # The faults here are all answers (no reset, no timeout): a command stopped by a
    # rebalance or the shutdown either finished its call or had closed its attempt
    # (send.attempt_failed), so the next owner resumed it; none is left unknown.
    assert set(outcomes.values()) == {"send.accepted"}
    sends = simulator_sends(sim)
    assert set(sends.values()) == {1}, "no message reached the API twice"
    accepted = {cid for cid, t in outcomes.items() if t == "send.accepted"}
    assert accepted <= set(sends)
    retried = {
        e.data.command_id for e in events if e.type == "send.attempted" and e.data.attempt > 1
    }
    assert retried, "the faults really made commands retry across the rebalances"
    closed = {
        (e.data.command_id, e.data.attempt) for e in events if e.type == "send.attempt_failed"
    }
    opened = {(e.data.command_id, e.data.attempt) for e in events if e.type == "send.attempted"}
    last_attempt = dict(sorted(opened, key=lambda a: a[1]))
    assert opened - closed == set(last_attempt.items()), (
        "every attempt but each command's last one was closed with send.attempt_failed"
    )
    rebuilt = _ledger_rebuilds(tmp_path)
    assert len(rebuilt[0]) >= 2, "the first sender's partitions changed mid-run"
    assert rebuilt[1], "the second sender took partitions mid-run"
