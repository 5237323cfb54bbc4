"""The ports a command handler works through; adapters implement them, tests fake them.

Nothing here imports Kafka or HTTP: :mod:`services.sender.handler` depends only
on these shapes, so it runs in a test with in-memory fakes.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from mmbus.contracts.commands import Provider
from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import Endpoint
from mmbus.dead_letters import RecordLike
from services.sender.outcomes import Result

# The Kafka record a command came in: what a dead letter needs of it, too (aiokafka's
# ConsumerRecord has all of it).
CommandRecord = RecordLike


class Results(Protocol):
    """Where the sender's events go; each call returns once the event is durable."""

    async def about(self, event: Message, command: CommandRecord) -> None:
        """A send event about the command in ``command``: co-partitioned with it."""

    async def observed(self, event: Message) -> None:
        """A fact the sender looked up (onboarding, template category), on its stream."""

    async def dead_letter(self, event: Message) -> None:
        """A record that is no command, with why."""


class Observer(Protocol):
    """Sees each command taken and each send event once durable (benchmarks, tracing)."""

    def command_taken(self, record: CommandRecord) -> None: ...
    def event_written(self, event: Message, command: CommandRecord) -> None: ...


class Api(Protocol):
    """The Graph API (or the solution provider): sends and look-ups."""

    async def send(
        self, provider: Provider, phone_number_id: str, endpoint: Endpoint, body: dict[str, Any]
    ) -> tuple[Result, float]: ...

    async def waba_onboarding(self, waba_id: str) -> dict[str, Any]: ...

    async def template(self, waba_id: str, name: str, language: str) -> dict[str, Any] | None: ...


class Pacer(Protocol):
    async def acquire(self, number: str, priority: int = 0) -> float: ...
    async def admit(self, number: str, priority: int = 0) -> float: ...
    def throttled(self, number: str) -> None: ...
    def succeeded(self, number: str) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...
    def monotonic(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock. ``now`` and ``monotonic`` are the C functions themselves, bound
    once: a send reads the clock five or six times, and a Python method around each
    read cost more than the read."""

    def __init__(self) -> None:
        self.now: Callable[[], datetime] = functools.partial(datetime.now, UTC)
        self.monotonic: Callable[[], float] = time.monotonic

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
