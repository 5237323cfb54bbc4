"""Fault injection: what the admin API can make the simulated Graph API do wrong.

A :class:`FaultPlan` is a value; ``choose(plan, draw)`` maps one uniform random
draw in [0, 1) (made by the adapter) to at most one fault for one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Retryable Graph errors the sender must survive, with their HTTP status and message.
KNOWN_ERRORS: dict[int, tuple[int, str]] = {
    1: (500, "An unknown error occurred"),
    2: (503, "Service temporarily unavailable"),
    4: (400, "Application request limit reached"),
    80007: (400, "Rate limit issues"),
    130429: (400, "Rate limit hit"),
    131000: (500, "Something went wrong"),
    131016: (503, "Service unavailable"),
    131056: (400, "(Business Account, Consumer Account) pair rate limit hit"),
    131057: (503, "Account in maintenance mode"),
    133004: (503, "Server temporarily unavailable"),
}


class Latency(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    distribution: Literal["fixed", "uniform", "exponential"] = "fixed"
    ms: float = Field(
        default=0.0, ge=0, description="fixed value, uniform low, or exponential mean"
    )
    max_ms: float = Field(default=0.0, ge=0, description="uniform high; cap for exponential")


class FaultPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    latency: Latency = Latency()
    error_rates: dict[int, float] = Field(
        default_factory=dict, description="Graph error code -> probability per call."
    )
    http_5xx_rate: float = Field(default=0.0, ge=0, le=1, description="plain HTTP 500/502/503")
    burst_5xx: int = Field(default=0, ge=0, description="the next N calls answer 503")
    reset_rate: float = Field(default=0.0, ge=0, le=1, description="close the connection (RST)")
    timeout_after_accept_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="accept the message, then answer too late (the ambiguous case)",
    )
    timeout_hang_s: float = Field(default=30.0, ge=0, le=600)


@dataclass(frozen=True)
class GraphFault:
    code: int
    http_status: int
    message: str


@dataclass(frozen=True)
class Http5xx:
    http_status: int


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class TimeoutAfterAccept:
    hang_s: float


Fault = GraphFault | Http5xx | Reset | TimeoutAfterAccept | None


def choose(plan: FaultPlan, draw: float, burst_left: int) -> Fault:
    """At most one fault for this call; bands of the draw are laid end to end."""
    if burst_left > 0:
        return Http5xx(503)
    edge = 0.0
    for code, rate in sorted(plan.error_rates.items()):
        edge += rate
        if draw < edge:
            http, message = KNOWN_ERRORS.get(code, (400, "Simulated error"))
            return GraphFault(code, http, f"(#{code}) {message}")
    edge += plan.http_5xx_rate
    if draw < edge:
        return Http5xx(500 + int(draw * 1000) % 4)  # 500..503
    edge += plan.reset_rate
    if draw < edge:
        return Reset()
    edge += plan.timeout_after_accept_rate
    if draw < edge:
        return TimeoutAfterAccept(plan.timeout_hang_s)
    return None


def latency_s(latency: Latency, draw: float) -> float:
    if latency.distribution == "fixed":
        return latency.ms / 1000
    if latency.distribution == "uniform":
        return (latency.ms + (max(latency.max_ms, latency.ms) - latency.ms) * draw) / 1000
    value = -latency.ms * math.log(1 - draw) if draw < 1 else latency.max_ms
    return min(value, latency.max_ms or value) / 1000
