"""Throughput and pair limits as immutable values: a call takes a token or is refused."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Bucket:
    """Token bucket holding at most one second's worth of tokens."""

    tokens: float
    updated: float

    def take(self, now: float, rate: float) -> tuple[bool, Bucket]:
        tokens = min(rate, self.tokens + (now - self.updated) * rate)
        if tokens >= 1.0:
            return True, Bucket(tokens - 1.0, now)
        return False, Bucket(tokens, now)


@dataclass(frozen=True)
class Limits:
    buckets: dict[str, Bucket] = field(default_factory=dict)
    last_to_user: dict[tuple[str, str], float] = field(default_factory=dict)

    def take_token(self, number: str, now: float, rate: float) -> tuple[bool, Limits]:
        bucket = self.buckets.get(number, Bucket(tokens=rate, updated=now))
        ok, bucket = bucket.take(now, rate)
        return ok, replace(self, buckets={**self.buckets, number: bucket})

    def pair_allows(self, number: str, user: str, now: float, window_s: float) -> bool:
        last = self.last_to_user.get((number, user))
        return last is None or now - last >= window_s

    def sent_to(self, number: str, user: str, now: float) -> Limits:
        return replace(self, last_to_user={**self.last_to_user, (number, user): now})
