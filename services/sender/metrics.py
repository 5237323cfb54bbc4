"""Prometheus metrics of one sender process (own registry, so tests can run several).

The series that move on every send (outcomes, the pacer's waits, the API's
latency) are plain Python numbers that a collector turns into Prometheus
families when scraped. prometheus_client's own Counter and Histogram take a lock
and check their state on every change, and a histogram walks its buckets one by
one: a few microseconds each, four or five times per send, for a process whose
event loop is single-threaded (the scrape is served on the same loop, so nothing
reads a number while it changes). What is exposed is the same: the same names,
labels, buckets, ``_sum``, ``_count`` and ``_created`` samples.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

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


class Tally:
    """One counter series: a number and when the series was created."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Buckets:
    """One histogram series: a count per bucket (the first bound at or above the value,
    as prometheus_client's Histogram counts), their sum, and when it was created."""

    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.counts[bisect.bisect_left(self._bounds, amount)] += 1
        self.sum += amount


class _Family(Collector):
    """Series of one metric by label values, collected when scraped."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        registry.register(self)


class TallyFamily(_Family):
    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.series: dict[tuple[str, ...], Tally] = {}
        super().__init__(name, documentation, labels, registry)

    def child(self, *values: str) -> Tally:
        tally = self.series.get(values)
        if tally is None:
            tally = self.series[values] = Tally()
        return tally

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, tally in list(self.series.items()):
            family.add_metric(values, tally.value, created=tally.created)
        yield family


class BucketsFamily(_Family):
    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        registry: CollectorRegistry,
        *,
        bounds: Sequence[float],
    ) -> None:
        self.bounds = (*sorted(float(b) for b in bounds), float("inf"))
        # The bucket labels prometheus_client's Histogram writes ("0.0", "+Inf"); that
        # helper carries no type hints.
        self._le = [floatToGoString(b) for b in self.bounds]  # type: ignore[no-untyped-call]
        self.series: dict[tuple[str, ...], Buckets] = {}
        super().__init__(name, documentation, labels, registry)

    def child(self, *values: str) -> Buckets:
        buckets = self.series.get(values)
        if buckets is None:
            buckets = self.series[values] = Buckets(self.bounds)
        return buckets

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, series in list(self.series.items()):
            cumulative: list[tuple[str, float]] = []
            total = 0
            for le, count in zip(self._le, series.counts, strict=True):
                total += count
                cumulative.append((le, float(total)))
            family.add_metric(values, cumulative, series.sum)
            # As prometheus_client's Histogram reports it (exposed as its own gauge).
            labels = dict(zip(self.labels, values, strict=True))
            family.samples.append(Sample(f"{self.name}_created", labels, series.created))
        yield family


class SenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # process_* (CPU, memory, open files): what an operator checks first.
        ProcessCollector(registry=self.registry)
        self.sends = TallyFamily(
            "mmbus_sender_sends",
            "Send outcomes by route, outcome and reason (the Graph error code, http_<status> "
            "or transport for a failure or retry; the rule or reason of a suppression or "
            "rejection; none for accepted and indeterminate).",
            ["route", "outcome", "reason"],
            self.registry,
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
        self._limiter_wait = BucketsFamily(
            "mmbus_sender_rate_limiter_wait_seconds",
            "Time a send waited for its number's slot.",
            [],
            self.registry,
            bounds=(0.0, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
        )
        self.limiter_wait = self._limiter_wait.child()
        self.http_latency = BucketsFamily(
            "mmbus_sender_http_latency_seconds",
            "Graph API call latency.",
            ["endpoint"],
            self.registry,
            bounds=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
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

    def count(self, route: str | None, outcome: str, reason: str | None = None) -> None:
        self.sends.child(route or "none", outcome, reason or "none").value += 1.0

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
            self.queue_depth.labels(number).set_function(lambda: depth.value)
        return depth

    def call_took(self, endpoint: str, seconds: float) -> None:
        self.http_latency.child(endpoint).observe(seconds)
