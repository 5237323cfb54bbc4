"""Long fault runs (`make test-slow`, not part of `make test`): repeated kills under faults."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from mmbus.contracts.topics import Stream
from services.common.settings import CommonSettings
from tests.sender.support import (
    publish,
    read_stream,
    read_to_end,
    simulator_sends,
    terminal_by_command,
    terminals_cover,
)
from tests.sender.test_sender_guarantees import (
    _sender_process,
    campaign,
    simulator,  # noqa: F401 - the fixture
)

pytestmark = pytest.mark.slow


async def test_three_kills_under_faults_still_exactly_once_in_effect(
    kafka_settings: CommonSettings,
    tmp_path: Path,
    simulator: tuple[str, httpx.Client],  # noqa: F811
) -> None:
    url, sim = simulator
    sim.put(
        "/_admin/faults",
        json={
            "error_rates": {"131000": 0.1, "130429": 0.05},
            "http_5xx_rate": 0.05,
            "reset_rate": 0.02,
        },
    ).raise_for_status()
    commands = campaign(5000, per_recipient=1)
    await publish(kafka_settings, commands)
    ids = {c.data.command_id for c in commands}
    retrying = {
        "MMBUS_SENDER_MAX_ATTEMPTS": "30",
        "MMBUS_SENDER_BACKOFF_BASE_S": "0.05",
        "MMBUS_SENDER_BACKOFF_CAP_S": "0.5",
    }
    open_at_kills: set[str] = set()
    for round_, done in enumerate((800, 2000, 3200)):
        proc = _sender_process(kafka_settings, url, tmp_path, **retrying)
        try:
            await read_stream(
                kafka_settings,
                Stream.SEND_EVENTS,
                until=lambda es, n=done: len(terminal_by_command(es)) >= n,
                deadline_s=240,
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        snapshot = await read_to_end(kafka_settings, Stream.SEND_EVENTS)
        attempted = {e.data.command_id for e in snapshot if e.type == "send.attempted"}
        open_at_kills |= attempted - set(terminal_by_command(snapshot))
        assert len(terminal_by_command(snapshot)) < len(ids), f"kill {round_ + 1} came mid-run"
    last = _sender_process(kafka_settings, url, tmp_path, **retrying)
    try:
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids), deadline_s=300
        )
    finally:
        last.terminate()
        assert last.wait(timeout=60) == 0
    terminals = terminal_by_command(events)
    assert set(terminals) == ids, "no command lost"
    assert set(terminals.values()) == {1}, "one result per command across three crashes"
    indeterminate = {e.data.command_id for e in events if e.type == "send.indeterminate"}
    # A reset after the request went out is ambiguous too: those are reported with
    # their own cause, everything else indeterminate was open at a kill.
    lost = {
        e.data.command_id
        for e in events
        if e.type == "send.indeterminate" and e.data.cause == "connection_lost_after_send"
    }
    assert lost, "the resets really hit calls in flight"
    unexplained = indeterminate - lost - open_at_kills
    assert not unexplained, [
        (e.data.cause, e.data.detail, e.data.attempt)
        for e in events
        if e.type == "send.indeterminate" and e.data.command_id in unexplained
    ][:5]
    sends = simulator_sends(sim)
    assert set(sends.values()) == {1}, "no message reached the API twice"
    accepted = {e.data.command_id for e in events if e.type == "send.accepted"}
    assert accepted <= set(sends)
    assert set(sends) - accepted <= indeterminate
