"""Per-number pacing: evenly spaced send slots, and a hard cap on actual calls.

``acquire`` reserves the number's next free slot (spacing 1/rate) and keeps the
traffic smooth. Between the slot and the HTTP call the sender writes
``send.attempted`` to Kafka, and acknowledgements arrive in batches, so sends
can bunch up again; ``admit``, called right before each call, is the guarantee:
a sliding window of the number's actual call times never holds more than the
rate, with a margin for network jitter, and a small token bucket keeps a stall
from releasing a second's worth of calls at once. A 130429 halves the number's pace; each
success wins back 1 %, up to the configured rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Pace:
    rate: float
    factor: float = 1.0
    next_slot: float = 0.0
    waiting: int = 0
    recent: deque[float] = field(default_factory=deque)
    tokens: float = 1.0
    refilled: float = field(default_factory=time.monotonic)
    # Calls waiting for admission, served first come, first served.
    queue: deque[asyncio.Future[None]] = field(default_factory=deque)
    timer: asyncio.TimerHandle | None = None


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

    async def acquire(self, number: str) -> float:
        """Wait for this number's next slot; returns the seconds waited."""
        pace = self._pace(number)
        now = time.monotonic()
        slot = max(now, pace.next_slot)
        pace.next_slot = slot + 1.0 / (pace.rate * pace.factor)
        wait = slot - now
        if wait > 0:
            pace.waiting += 1
            try:
                await asyncio.sleep(wait)
            finally:
                pace.waiting -= 1
        return wait

    async def admit(self, number: str) -> float:
        """Right before the call: wait until the last window holds fewer calls than the rate.

        First come, first served: when capacity frees, the longest waiting call takes
        it. (Each waiter used to poll on its own, and under load an early command
        could lose the race again and again while later ones went out: it held back
        the partition's committable offset and the latency's tail.)
        """
        pace = self._pace(number)
        if not pace.queue and self._take_or_pause(pace) is None:
            return 0.0
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pace.queue.append(turn)
        started = time.monotonic()
        if pace.timer is None:
            self._serve(pace)
        await turn  # cancelled: the future is done, and _serve passes it over
        return time.monotonic() - started

    def _take_or_pause(self, pace: _Pace) -> float | None:
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

    def _serve(self, pace: _Pace) -> None:
        """Admit waiting calls in order while there is capacity; then sleep until there is."""
        pace.timer = None
        while pace.queue:
            head = pace.queue[0]
            if head.done():  # its command was cancelled while it waited
                pace.queue.popleft()
                continue
            pause = self._take_or_pause(pace)
            if pause is not None:
                pace.timer = asyncio.get_running_loop().call_later(pause, self._serve, pace)
                return
            pace.queue.popleft()
            head.set_result(None)

    def throttled(self, number: str) -> None:
        pace = self._pace(number)
        pace.factor = max(self.min_factor, pace.factor * 0.5)

    def succeeded(self, number: str) -> None:
        pace = self._pace(number)
        if pace.factor < 1.0:
            pace.factor = min(1.0, pace.factor * 1.01)

    def waiting(self, number: str) -> int:
        return self._pace(number).waiting

    def numbers(self) -> list[str]:
        return list(self._paces)
