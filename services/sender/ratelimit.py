"""Per-number pacing: evenly spaced send slots, slowed down when Meta says 130429.

Each ``acquire`` reserves the next free slot of its number (spacing 1/rate), so
no one-second window ever holds more than the rate. A 130429 halves the
number's pace; each success wins back 1 %, up to the configured rate.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class _Pace:
    rate: float
    factor: float = 1.0
    next_slot: float = 0.0
    waiting: int = 0


@dataclass
class NumberPacer:
    default_rate: float
    overrides: dict[str, float] = field(default_factory=dict)
    safety: float = 0.97
    min_factor: float = 0.1
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
