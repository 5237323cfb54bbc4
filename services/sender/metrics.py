"""Prometheus metrics of one sender process (own registry, so tests can run several)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from mmbus.contracts.send_events import ApiError


def error_reason(error: ApiError) -> str:
    """A bounded label for an API error: its Graph code, else its HTTP status, else transport."""
    if error.code is not None:
        return str(error.code)
    if error.http_status is not None:
        return f"http_{error.http_status}"
    return "transport"


class Depth:
    """A count that goes up and down, read by its gauge when scraped."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


class SenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # process_* (CPU, memory, open files): what an operator checks first.
        ProcessCollector(registry=self.registry)
        self.sends = Counter(
            "mmbus_sender_sends_total",
            "Send outcomes by route, outcome and reason (the Graph error code, http_<status> "
            "or transport for a failure or retry; the rule or reason of a suppression or "
            "rejection; none for accepted and indeterminate).",
            ["route", "outcome", "reason"],
            registry=self.registry,
        )
        # The two gauges that move twice per send are plain integers read at scrape time:
        # a prometheus_client gauge takes a lock on every change.
        self._in_flight = 0
        self.in_flight = Gauge(
            "mmbus_sender_in_flight", "Commands in progress.", registry=self.registry
        )
        self.in_flight.set_function(lambda: self._in_flight)
        self._depths: dict[str, Depth] = {}
        self.queue_depth = Gauge(
            "mmbus_sender_queue_depth",
            "Sends waiting for their business number's next slot.",
            ["phone_number_id"],
            registry=self.registry,
        )
        self.limiter_wait = Histogram(
            "mmbus_sender_rate_limiter_wait_seconds",
            "Time a send waited for its number's slot.",
            buckets=(0.0, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "mmbus_sender_http_latency_seconds",
            "Graph API call latency.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.duplicates = Counter(
            "mmbus_sender_duplicate_commands_total",
            "Commands skipped because their id already has a result or is in progress.",
            registry=self.registry,
        )

        self.ledger_rebuild_events = Counter(
            "mmbus_sender_ledger_rebuild_events_total",
            "Send events read to rebuild the ledger on assignment (from each partition's "
            "checkpoint, not the whole log).",
            registry=self.registry,
        )

        # Label children by their values: ``labels()`` validates and hashes its arguments
        # on every call, and the send path asks for the same few children thousands of times.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def count(self, route: str | None, outcome: str, reason: str | None = None) -> None:
        self._child(self.sends, route or "none", outcome, reason or "none").inc()

    def failed_with(self, route: str | None, outcome: str, error: ApiError) -> None:
        self.count(route, outcome, error_reason(error))

    def started(self) -> None:
        self._in_flight += 1

    def finished(self) -> None:
        self._in_flight -= 1

    def waiting(self, number: str) -> Depth:
        """The queue depth of one business number (its gauge reads it when scraped)."""
        depth = self._depths.get(number)
        if depth is None:
            depth = self._depths[number] = Depth()
            self._child(self.queue_depth, number).set_function(lambda: depth.value)
        return depth

    def call_took(self, endpoint: str, seconds: float) -> None:
        self._child(self.http_latency, endpoint).observe(seconds)
