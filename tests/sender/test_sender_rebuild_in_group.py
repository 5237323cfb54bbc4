"""A ledger rebuild longer than the group's session timeout keeps the sender in its group.

aiokafka sends no heartbeat while a rebalance callback runs. A rebuild done
inside the assignment callback and lasting past the session timeout got the
sender evicted while it went on working on partitions the group gave to
another sender (chaos seed 4: 1,797 commands with two results). The rebuild
runs beside the consumer instead (services/sender/rebuilds.py); here it is
made to last longer than the session, on the real broker.
"""

from __future__ import annotations

import asyncio

import httpx

from mmbus.contracts.topics import Stream
from services.common.settings import CommonSettings
from services.sender.ledger import Ledger
from services.sender.ledger_rebuild import rebuild_ledger
from services.sender.offsets import LedgerCheckpoint
from services.sender.settings import SenderSettings
from tests.sender.support import (
    command,
    publish,
    read_stream,
    running_sender,
    sender_settings,
    simulator_sends,
    terminal_by_command,
    terminals_cover,
)
from tests.simulator.support import NUMBER

SESSION_S = 6.0  # the broker's least (group.min.session.timeout.ms)
REBUILD_S = SESSION_S + 4.0  # well past it: two heartbeats missed would evict


async def test_a_rebuild_longer_than_the_session_keeps_the_sender_in_its_group(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    url, sim = simulator
    commands = [command(NUMBER, f"4479111240{i:02d}") for i in range(12)]
    await publish(kafka_settings, commands)
    ids = {c.data.command_id for c in commands}
    rebuilds: list[tuple[list[int], float]] = []

    async def slow_rebuild(
        ledger: Ledger, settings: SenderSettings, partitions: list[int]
    ) -> tuple[dict[int, LedgerCheckpoint], int]:
        # A rebuild of a large log on a busy machine, made long on purpose.
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.sleep(REBUILD_S)
        rebuilt = await rebuild_ledger(ledger, settings, partitions)
        rebuilds.append((sorted(partitions), loop.time() - started))
        return rebuilt

    settings = sender_settings(kafka_settings, url, sender_session_timeout_s=SESSION_S)
    async with running_sender(settings, rebuild=slow_rebuild) as sender:
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids), deadline_s=90
        )
        assert sender.ready

    assert len(rebuilds) == 1, f"one assignment, never evicted and assigned again: {rebuilds}"
    ((partitions, seconds),) = rebuilds
    assert seconds > SESSION_S, "the rebuild really outlasted the session"
    assert len(partitions) > 1, "every partition of the topic was rebuilt in that one pass"
    terminals = terminal_by_command(events)
    assert set(terminals) == ids
    assert set(terminals.values()) == {1}
    sends = simulator_sends(sim)
    assert set(sends.values()) == {1}, "each message reached the API once"
