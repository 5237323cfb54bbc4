"""Per-number pacing: evenly spaced send slots, and a hard cap on actual calls.

``acquire`` gives the number's next free slot (spacing 1/rate, after a burst of
at most ``burst_s`` of traffic) and keeps the traffic smooth. Between the slot
and the HTTP call the sender writes
``send.attempted`` to Kafka, and acknowledgements arrive in batches, so sends
can bunch up again; ``admit``, called right before each call, is the guarantee:
a sliding window of the number's actual call times never holds more than the
rate, with a margin for network jitter, and a small token bucket keeps a stall
from releasing a second's worth of calls at once. A 130429 halves the number's pace; each
success wins back 1 %, up to the configured rate.

At both gates the oldest command goes first (``priority``: the sender's intake
order), not the first to arrive. Commands reach the pacer out of intake order
whenever some had to wait for something else first (a WABA lookup, a retry's
back-off, the recipient's lane): measured before this rule, the first MARKETING
commands of a campaign waited for the onboarding lookup and then queued behind
every UTILITY command taken in meanwhile, holding the partition's committable
offset at 1 for seconds while hundreds of later commands finished.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

_arrivals = itertools.count()


# (priority, arrival, turn): a tuple, so the heap compares in C; a dataclass with
# order=True compared in Python, about ten calls per command at the sender's load.
_Waiter: TypeAlias = tuple[int, int, "asyncio.Future[None]"]


@dataclass
class _Line:
    """The calls waiting at one gate of one number, served lowest priority value first
    (ties: first come, first served) by one timer."""

    waiters: list[_Waiter] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None

    def idle(self) -> bool:
        while self.waiters and self.waiters[0][2].done():  # cancelled while waiting
            heapq.heappop(self.waiters)
        return not self.waiters

    async def wait(self, priority: int, take: Callable[[], float | None]) -> float:
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiters, (priority, next(_arrivals), turn))
        started = time.monotonic()
        if self.timer is None:
            self.serve(take)
        await turn  # cancelled: the future is done, and serve passes it over
        return time.monotonic() - started

    def serve(self, take: Callable[[], float | None]) -> None:
        """Let waiting calls through while ``take`` allows; then sleep until it may again."""
        self.timer = None
        while not self.idle():
            pause = take()
            if pause is not None:
                self.timer = asyncio.get_running_loop().call_later(pause, self.serve, take)
                return
            heapq.heappop(self.waiters)[2].set_result(None)


@dataclass
class _Pace:
    rate: float
    factor: float = 1.0
    next_slot: float = 0.0
    recent: deque[float] = field(default_factory=deque)
    tokens: float = 1.0
    refilled: float = field(default_factory=time.monotonic)
    slots: _Line = field(default_factory=_Line)
    admissions: _Line = field(default_factory=_Line)


@dataclass
class NumberPacer:
    default_rate: float
    overrides: dict[str, float] = field(default_factory=dict)
    safety: float = 0.92
    min_factor: float = 0.1
    window_s: float = 1.05  # one second, plus a margin for jitter between here and the API
    burst_s: float = 0.1  # after a stall, catch up with at most this much traffic at once
    _paces: dict[str, _Pace] = field(default_factory=dict)

    def _pace(self, number: str) -> _Pace:
        pace = self._paces.get(number)
        if pace is None:
            pace = _Pace(rate=self.overrides.get(number, self.default_rate) * self.safety)
            self._paces[number] = pace
        return pace

    async def acquire(self, number: str, priority: int = 0) -> float:
        """Wait for this number's next slot; returns the seconds waited."""
        pace = self._paces.get(number) or self._pace(number)
        # The common case first and short (no line, a slot free now): no closure made.
        if (not pace.slots.waiters or pace.slots.idle()) and self._take_slot(pace) is None:
            return 0.0

        def take() -> float | None:
            return self._take_slot(pace)

        return await pace.slots.wait(priority, take)

    async def admit(self, number: str, priority: int = 0) -> float:
        """Right before the call: wait until the last window holds fewer calls than the rate."""
        pace = self._paces.get(number) or self._pace(number)
        if (not pace.admissions.waiters or pace.admissions.idle()) and self._take_admission(
            pace
        ) is None:
            return 0.0

        def take() -> float | None:
            return self._take_admission(pace)

        return await pace.admissions.wait(priority, take)

    def _take_slot(self, pace: _Pace) -> float | None:
        """Take the next slot now (None), or say how long until it comes.

        Slots may be taken up to ``burst_s`` behind now: a number that had nothing
        to send, or a timer that fired late (a busy event loop), lets that much
        traffic through at once, and the k-th slot after that never comes before k
        intervals; ``admit`` still caps the actual calls. Both halves were measured:
        releasing one slot per timer firing capped a number at a few calls per loop
        turn and tripled the p99; and with no allowance after idle, the bursts in
        which commands arrive (a batch of Kafka acknowledgements frees dozens of
        in-flight places at once) waited about 50 ms each at a number running at
        half its rate, a tenth of each command's time in ``make bench-sender``."""
        interval = 1.0 / (pace.rate * pace.factor)
        now = time.monotonic()
        if now < pace.next_slot:
            return pace.next_slot - now
        pace.next_slot = max(pace.next_slot, now - self.burst_s) + interval
        return None

    def _take_admission(self, pace: _Pace) -> float | None:
        """Take one admission now (None), or say how long until one may be free."""
        rate = pace.rate * pace.factor
        limit = max(1, math.floor(rate))
        burst = max(1.0, rate * self.burst_s)
        now = time.monotonic()
        pace.tokens = min(burst, pace.tokens + (now - pace.refilled) * rate)
        pace.refilled = now
        while pace.recent and now - pace.recent[0] >= self.window_s:
            pace.recent.popleft()
        if len(pace.recent) < limit and pace.tokens >= 1.0:
            pace.tokens -= 1.0
            pace.recent.append(now)
            return None
        return max(
            (1.0 - pace.tokens) / rate,
            pace.recent[0] + self.window_s - now if len(pace.recent) >= limit else 0.0,
        )

    def waiting(self, number: str) -> int:
        """Calls of this number in line at either gate (a reading, for tests and gauges)."""
        pace = self._paces.get(number)
        if pace is None:
            return 0
        lines = (pace.slots.waiters, pace.admissions.waiters)
        return sum(1 for line in lines for _, _, turn in line if not turn.done())

    def throttled(self, number: str) -> None:
        pace = self._pace(number)
        pace.factor = max(self.min_factor, pace.factor * 0.5)

    def succeeded(self, number: str) -> None:
        pace = self._pace(number)
        if pace.factor < 1.0:
            pace.factor = min(1.0, pace.factor * 1.01)
