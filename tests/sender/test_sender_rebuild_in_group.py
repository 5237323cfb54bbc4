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
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from mmbus.contracts.topics import Stream
from services.common.admin_session import with_admin
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
from tests.waiting import eventually

SESSION_S = 6.0  # the broker's least (group.min.session.timeout.ms)


async def _group(settings: SenderSettings) -> tuple[str, frozenset[str]]:
    """The sender group's state and its members' ids, as the broker sees them."""

    async def describe(admin: AIOKafkaAdminClient) -> Any:
        return await admin.describe_consumer_groups([settings.sender_group_id])

    (response,) = await with_admin(settings.kafka_client_options(), describe)
    (group,) = response.groups
    # (error_code, group_id, state, protocol_type, protocol, members, ...)
    return str(group[2]), frozenset(str(member[0]) for member in group[5])


async def test_a_rebuild_longer_than_the_session_keeps_the_sender_in_its_group(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    url, sim = simulator
    commands = [command(NUMBER, f"4479111240{i:02d}") for i in range(12)]
    await publish(kafka_settings, commands)
    ids = {c.data.command_id for c in commands}
    rebuilding, release = asyncio.Event(), asyncio.Event()
    rebuilds: list[list[int]] = []

    async def held_rebuild(
        ledger: Ledger, settings: SenderSettings, partitions: list[int]
    ) -> tuple[dict[int, LedgerCheckpoint], int]:
        # A rebuild of a large log on a busy machine: it lasts until the test lets it end.
        rebuilds.append(sorted(partitions))
        rebuilding.set()
        await release.wait()
        return await rebuild_ledger(ledger, settings, partitions)

    settings = sender_settings(kafka_settings, url, sender_session_timeout_s=SESSION_S)
    async with running_sender(settings, rebuild=held_rebuild) as sender:
        await asyncio.wait_for(rebuilding.wait(), 60)
        loop = asyncio.get_running_loop()
        started = loop.time()
        state, members = await _group(settings)
        assert state == "Stable"
        assert len(members) == 1

        async def kept_past_the_session() -> bool:
            # Evicted, the sender would rejoin under a new member id.
            assert await _group(settings) == (state, members), "the group evicted the sender"
            return loop.time() - started > SESSION_S * 1.5

        await eventually(
            kept_past_the_session,
            within_s=SESSION_S * 4,
            poll_s=0.5,
            what="the group keeping the sender through one and a half session timeouts",
        )
        release.set()
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids), deadline_s=90
        )
        assert sender.ready

    assert len(rebuilds) == 1, f"one assignment, never evicted and assigned again: {rebuilds}"
    assert len(rebuilds[0]) > 1, "every partition of the topic was rebuilt in that one pass"
    terminals = terminal_by_command(events)
    assert set(terminals) == ids
    assert set(terminals.values()) == {1}
    sends = simulator_sends(sim)
    assert set(sends.values()) == {1}, "each message reached the API once"
