"""The runner takes commands from every partition in turn, so one slow number does not
hold the others back (services/sender/intake.py)."""

from __future__ import annotations

import httpx
import pytest

from mmbus.contracts.topics import Stream
from mmbus.partitioner import partition_for
from services.common.settings import CommonSettings
from services.sender.intake import PER_TURN, share, turns
from tests.sender.support import (
    command,
    publish,
    read_stream,
    running_sender,
    sender_settings,
    terminals_cover,
)
from tests.simulator.support import NUMBER, NUMBER_2


@pytest.mark.parametrize(
    ("in_flight", "first", "rest"),
    [
        ({}, ["a", "b", "c"], []),
        ({"a": 40}, ["b", "c"], ["a"]),  # a holds more than its share: the others first
        ({"a": 40, "b": 40, "c": 40}, [], ["a", "b", "c"]),  # all busy: all may still take
        ({"a": 19, "b": 20}, ["a", "c"], ["b"]),
    ],
)
def test_turns_serve_partitions_under_their_share_first(
    in_flight: dict[str, int], first: list[str], rest: list[str]
) -> None:
    assert turns(["a", "b", "c"], in_flight, max_in_flight=60) == (first, rest)


def test_a_partitions_share_is_never_below_one_turn() -> None:
    assert share(2000, 6) == 333
    assert share(40, 6) == PER_TURN
    assert share(40, 0) == 40


async def test_a_slow_number_does_not_hold_back_the_others(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    """NUMBER_2 may send 2 messages a second (the simulator's limit, and the sender's);
    its 150 commands were published first, into another partition than NUMBER's 20.
    Taken as aiokafka hands them out (up to 100 of one partition's buffer), NUMBER_2's
    commands filled the 20-command window and NUMBER's waited behind them until those
    100 were taken, some 40 s later; taken in turns, NUMBER's all go out while
    NUMBER_2 is at its first few."""
    url, _ = simulator
    partitions = list(range(kafka_settings.partitions))
    assert partition_for(NUMBER.encode(), partitions, partitions) != partition_for(
        NUMBER_2.encode(), partitions, partitions
    ), "the two numbers' commands must be in different partitions for this test"
    slow = [command(NUMBER_2, f"4479111{i:05d}") for i in range(150)]
    fast = [command(NUMBER, f"4479112{i:05d}") for i in range(20)]
    await publish(kafka_settings, slow + fast)
    settings = sender_settings(
        kafka_settings,
        url,
        sender_max_in_flight=20,
        sender_rate_per_s=1000,
        sender_rate_overrides={NUMBER_2: 2},
        sender_drain_timeout_s=0.5,  # NUMBER_2's other commands are not this test's
    )
    fast_ids = {c.data.command_id for c in fast}
    first_slow = {c.data.command_id for c in slow[:4]}
    async with running_sender(settings):
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(fast_ids | first_slow)
        )
    accepted = sorted(
        (e.data.requested_at, e.data.command_id) for e in events if e.type == "send.accepted"
    )
    order = [cid for _, cid in accepted]
    assert fast_ids <= set(order), "every command of NUMBER was sent"
    last_fast = max(order.index(cid) for cid in fast_ids)
    slow_before = sum(1 for cid in order[:last_fast] if cid not in fast_ids)
    # One of NUMBER_2's goes out every half second; NUMBER's 20 need milliseconds once
    # taken. Held behind NUMBER_2's window they came after at least 10 of them.
    assert slow_before < 5, f"NUMBER's last command went out after {slow_before} of NUMBER_2's"
