"""Intake shares the in-flight window among partitions (services.sender.intake)."""

from __future__ import annotations

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from mmbus.contracts.codec import encode
from mmbus.contracts.topics import Stream
from services.common.settings import CommonSettings
from services.sender.intake import turn_order
from services.sender.runner import Sender
from tests.sender.support import (
    command,
    publish,
    read_stream,
    running_sender,
    sender_settings,
    terminal_by_command,
    terminals_cover,
)
from tests.simulator.support import NUMBER, NUMBER_2
from tests.waiting import eventually


@pytest.mark.parametrize(
    ("in_flight", "turn", "expected"),
    [
        ({}, 0, ["a", "b", "c"]),  # nothing in flight: in rotation
        ({}, 1, ["b", "c", "a"]),
        ({}, 5, ["c", "a", "b"]),
        ({"a": 40}, 0, ["b", "c", "a"]),  # the busy one last
        ({"a": 40, "b": 1}, 0, ["c", "b", "a"]),
        ({"a": 3, "b": 3, "c": 3}, 2, ["c", "a", "b"]),  # equal: rotation decides
        ({"a": 0, "b": 2, "c": 1}, 1, ["a", "c", "b"]),
    ],
)
def test_the_partition_holding_least_of_the_window_is_offered_a_free_place_first(
    in_flight: dict[str, int], turn: int, expected: list[str]
) -> None:
    assert turn_order(["a", "b", "c"], in_flight, turn) == expected


def _partition(number: str, partitions: int) -> int:
    key = encode(command(number, "447911125000")).key
    return int(DefaultPartitioner()(key, list(range(partitions)), list(range(partitions))))


async def test_a_slow_numbers_backlog_does_not_hold_up_another_numbers_commands(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    """A number limited to 2/s has 80 commands in flight or waiting; another number's
    30 commands, published while the sender works on that backlog, finish long
    before it. Before the fair intake (aiokafka's order: a partition's fetched
    records until they run out), 41 of the slow commands finished first."""
    url, _ = simulator
    partitions = kafka_settings.partitions
    assert _partition(NUMBER, partitions) != _partition(NUMBER_2, partitions), "needs two"
    slow = [command(NUMBER_2, f"447911125{i:03d}") for i in range(80)]  # 2/s at the API
    fast = [command(NUMBER, f"4915112350{i:03d}", "order_update", "UTILITY") for i in range(30)]
    slow_ids = {c.data.command_id for c in slow}
    fast_ids = {c.data.command_id for c in fast}
    await publish(kafka_settings, slow)
    settings = sender_settings(
        kafka_settings,
        url,
        sender_rate_overrides={NUMBER_2: 2},
        sender_max_in_flight=40,
        sender_drain_timeout_s=0.5,  # the slow backlog is cut short at the end
    )
    async with running_sender(settings) as sender:
        # The slow number holds the whole window before the other number's commands exist.
        await eventually(
            lambda: in_flight(sender) >= 40, within_s=30, what="the slow backlog filling the window"
        )
        await publish(kafka_settings, fast)
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(fast_ids)
        )
    done = terminal_by_command(events)
    slow_done = sum(1 for cid in done if cid in slow_ids)
    assert set(done) >= fast_ids
    assert {done[cid] for cid in fast_ids} == {1}, "one result per command"
    assert slow_done < 20, (
        f"{slow_done} of the slow number's 80 commands finished before the other "
        "number's 30: they waited behind its backlog"
    )


def in_flight(sender: Sender) -> float:
    return next(iter(sender.metrics.in_flight.collect())).samples[0].value
