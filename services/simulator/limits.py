"""Throughput and pair limits as pure functions over small immutable values.

The adapter stores one :class:`Bucket` per business number and the time of the
last message per (number, user); the rules decide from those values alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    """Token bucket holding at most one second's worth of tokens."""

    tokens: float
    updated: float

    @staticmethod
    def full(rate: float, now: float) -> Bucket:
        return Bucket(tokens=rate, updated=now)

    def take(self, now: float, rate: float) -> tuple[bool, Bucket]:
        tokens = min(rate, self.tokens + (now - self.updated) * rate)
        if tokens >= 1.0:
            return True, Bucket(tokens - 1.0, now)
        return False, Bucket(tokens, now)


def pair_allows(last_sent: float | None, now: float, window_s: float) -> bool:
    """One message per user per window from the same business number (131056)."""
    return last_sent is None or now - last_sent >= window_s
