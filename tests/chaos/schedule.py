"""The fault schedule of one chaos run: a pure function of the seed.

Crashes are placed by progress (the share of commands with a result), not by the
clock: on a busy two-core machine the clock would put them after the campaign.
Each crash is a SIGKILL followed by a restart after a seeded pause.
Faults of the simulated API and of its webhooks hold for the whole run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class KillBroker:
    """SIGKILL a broker: the leader of a send.commands partition, or another one."""

    which: Literal["leader", "other"]


@dataclass(frozen=True)
class KillPart:
    """SIGKILL one of the stack's processes."""

    name: str


Crash = KillBroker | KillPart


@dataclass(frozen=True)
class Step:
    at_progress: float  # share of commands with a terminal event when the crash happens
    crash: Crash
    down_s: float  # how long it stays down before the restart


@dataclass(frozen=True)
class Schedule:
    seed: int
    steps: tuple[Step, ...]
    api_faults: dict[str, Any]
    webhook_behaviour: dict[str, Any]


def full(seed: int) -> Schedule:
    """Both brokers' crashes, one sender, ingest and the projector, in a seeded order."""
    rng = random.Random(seed)
    crashes: list[Crash] = [
        KillBroker("leader"),
        KillBroker("other"),
        KillPart("sender-2"),
        KillPart("ingest"),
        KillPart("projector"),
        KillPart(rng.choice(["sender", "sender-2"])),
    ]
    rng.shuffle(crashes)
    # Crashes may overlap (a broker takes a minute to rejoin); the driver keeps one
    # broker down at a time.
    points = sorted(rng.uniform(0.05, 0.85) for _ in crashes)
    steps = tuple(
        Step(at, crash, round(rng.uniform(1.0, 6.0), 1))
        for at, crash in zip(points, crashes, strict=True)
    )
    return Schedule(seed, steps, api_faults(rng), webhook_behaviour(rng))


def short(seed: int) -> Schedule:
    """For `make test`: one broker bounce, one sender kill, one ingest kill."""
    rng = random.Random(seed)
    crashes: list[Crash] = [KillBroker("leader"), KillPart("sender-2"), KillPart("ingest")]
    rng.shuffle(crashes)
    steps = tuple(
        Step(at, crash, round(rng.uniform(1.0, 3.0), 1))
        for at, crash in zip((0.15, 0.4, 0.65), crashes, strict=True)
    )
    return Schedule(seed, steps, api_faults(rng), webhook_behaviour(rng))


def api_faults(rng: random.Random) -> dict[str, Any]:
    """The simulated Graph API's faults, as its admin API takes them (a FaultPlan)."""
    return {
        "error_rates": {
            "130429": round(rng.uniform(0.01, 0.03), 3),
            "131000": round(rng.uniform(0.01, 0.03), 3),
            "133004": round(rng.uniform(0.005, 0.015), 3),
        },
        "http_5xx_rate": round(rng.uniform(0.01, 0.03), 3),
        "reset_rate": round(rng.uniform(0.002, 0.008), 4),
        "timeout_after_accept_rate": round(rng.uniform(0.001, 0.004), 4),
        # Longer than the sender's read timeout: the answer comes too late to count.
        "timeout_hang_s": 12.0,
        "latency": {"distribution": "exponential", "ms": 5, "max_ms": 200},
    }


def webhook_behaviour(rng: random.Random) -> dict[str, Any]:
    """Duplicates, reordering and delays of the webhooks; retried long enough to outlive a
    crashed ingest, as Meta's retries (for days) do."""
    return {
        "duplicate_probability": round(rng.uniform(0.05, 0.15), 3),
        "out_of_order_probability": round(rng.uniform(0.05, 0.15), 3),
        "click_probability": 0.3,
        "sent_delay_ms": 20,
        "delivered_delay_ms": round(rng.uniform(50, 500)),
        "read_delay_ms": round(rng.uniform(100, 2000)),
        "click_delay_ms": round(rng.uniform(100, 2000)),
        "webhook_max_attempts": 50,
        "webhook_retry_base_ms": 100,
        "webhook_retry_max_ms": 2000,
    }
