"""Where a loop's CPU goes, per stage of a send: ``python -m bench.sender --stages``.

A sampling profiler on CPU time, in the process itself: ``ITIMER_PROF`` raises
SIGPROF after every ``interval_s`` of CPU this process spent, and the handler
records the Python stack it interrupted. CPU time, not wall time: on a machine
whose two cores are shared with the broker and the simulator, a wall-clock
sampler (py-spy, cProfile's default timer) also counts the time the process
waited for a core, wherever it happened to be preempted. A signal is handled
between two bytecodes, so time spent in C (uvloop, orjson, pydantic-core) is
charged to the Python code that called it or, for the event loop's own C work,
to the next Python code it runs.

Each sample goes to one stage: the innermost frame of the stack that belongs
to a stage marker decides (so a pydantic call made while building an event
counts as building the event). Stage time per send is the stage's share of the
samples times the CPU per send measured over the same window.
"""

from __future__ import annotations

import collections
import gc
import signal
import time
from types import CodeType, FrameType

# (stage, path fragment, function names or None for any), matched innermost frame first.
MARKERS: tuple[tuple[str, str, frozenset[str] | None], ...] = (
    ("logs", "structlog/", None),
    ("logs", "/logging/__init__", None),
    ("logs", "services/common/logging", None),
    ("metrics", "prometheus_client/", None),
    ("metrics", "services/sender/metrics.py", None),
    ("spans", "opentelemetry/", None),
    ("spans", "mmbus/tracing.py", None),
    ("spans", "services/sender/spans.py", None),
    ("route", "mmbus/contracts/phone.py", frozenset({"region_of", "_region_lookup"})),
    ("decode: phone validity", "mmbus/contracts/phone.py", None),
    (
        "decode: envelope",
        "mmbus/contracts/codec.py",
        frozenset({"decode", "_fast", "loads", "header_attributes", "_errors"}),
    ),
    ("encode", "mmbus/contracts/codec.py", None),
    ("build events", "services/sender/results.py", None),
    (
        "encode",
        "services/sender/fast_events.py",
        frozenset({"encode", "_default", "_headers", "_utc_text", "_instant_text"}),
    ),
    ("build events", "services/sender/fast_events.py", None),
    ("build events", "mmbus/contracts/envelope.py", frozenset({"derive_id", "_uuid5", "new_id"})),
    ("route", "services/sender/routing.py", None),
    ("route", "services/sender/knowledge.py", None),
    ("ledger", "services/sender/ledger", None),
    ("pacer", "services/sender/ratelimit.py", None),
    ("lanes", "services/sender/lanes.py", None),
    ("offsets", "services/sender/offsets.py", None),
    ("offsets", "services/sender/commits.py", None),
    ("clock", "services/sender/ports.py", None),
    ("produce", "aiokafka/producer/", None),
    ("produce", "services/sender/publishing.py", None),
    ("consume", "aiokafka/consumer/", None),
    ("http", "aiohttp/", None),
    ("http", "services/sender/http.py", None),
    ("http", "services/sender/graph.py", None),
    ("http", "services/sender/outcomes.py", None),
    ("handler, runner", "services/sender/handler.py", None),
    ("handler, runner", "services/sender/runner.py", None),
    ("handler, runner", "services/sender/runtime.py", None),
    ("bench's own", "bench/", None),
)
UNMARKED_KAFKA = "kafka client (network, records)"
OTHER = "event loop, other"


def stage_of(frames: tuple[CodeType, ...]) -> str:
    """The stage of one sampled stack (innermost frame first)."""
    kafka = False
    for code in frames:
        path, name = code.co_filename, code.co_name
        for stage, fragment, names in MARKERS:
            if fragment in path and (names is None or name in names):
                return stage
        kafka = kafka or "aiokafka/" in path
    return UNMARKED_KAFKA if kafka else OTHER


class StageSampler:
    """Counts stacks on SIGPROF between :meth:`start` and :meth:`stop` (main thread only)."""

    def __init__(self, interval_s: float = 0.0005) -> None:
        self.interval_s = interval_s
        self.stacks: collections.Counter[tuple[CodeType, ...]] = collections.Counter()

        # (stack, innermost sender frame and line): where in the sender a stage's time is.
        self.lines: collections.Counter[tuple[tuple[CodeType, ...], tuple[str, int]]] = (
            collections.Counter()
        )
        # The garbage collector's CPU, measured apart: its samples land on whatever
        # allocation set it off.
        self.gc_s = 0.0
        self._gc_started = 0.0

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        codes = []
        ours = None
        while frame is not None:
            codes.append(frame.f_code)
            if ours is None and "services/sender/" in frame.f_code.co_filename:
                ours = (
                    f"{frame.f_code.co_filename.rsplit('/', 1)[1]}:{frame.f_code.co_name}",
                    frame.f_lineno,
                )
            frame = frame.f_back
        stack = tuple(codes)
        self.stacks[stack] += 1
        if ours is not None:
            self.lines[stack, ours] += 1

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.process_time()
        else:
            self.gc_s += time.process_time() - self._gc_started

    def start(self) -> None:
        self.stacks.clear()
        self.lines.clear()
        self.gc_s = 0.0
        gc.callbacks.append(self._gc)
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval_s, self.interval_s)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
        gc.callbacks.remove(self._gc)

    def shares(self) -> dict[str, float]:
        """Each stage's share of the samples, largest first."""
        counts: collections.Counter[str] = collections.Counter()
        for stack, n in self.stacks.items():
            counts[stage_of(stack)] += n
        total = sum(counts.values()) or 1
        return {stage: n / total for stage, n in counts.most_common()}


def table(columns: dict[str, tuple[StageSampler, float, int]], top: int = 25) -> str:
    """µs per send per stage, one column per loop: ``{name: (sampler, CPU ms/send, sends)}``;
    then the sender's own lines that were sampled most (where its stages are)."""
    shares = {name: sampler.shares() for name, (sampler, _, _) in columns.items()}
    stages = sorted(
        {stage for s in shares.values() for stage in s},
        key=lambda stage: -max(s.get(stage, 0.0) for s in shares.values()),
    )
    lines = [f"{'µs CPU per send':34}" + "".join(f"{name:>16}" for name in columns)]
    for stage in stages:
        cells = "".join(
            f"{shares[name].get(stage, 0.0) * cpu_ms * 1000:16.0f}"
            for name, (_, cpu_ms, _) in columns.items()
        )
        lines.append(f"{stage:34}{cells}")
    rows = {
        "total": [f"{cpu_ms * 1000:16.0f}" for _, cpu_ms, _ in columns.values()],
        "(of which garbage collection)": [
            f"{s.gc_s / max(1, n) * 1e6:16.0f}" for s, _, n in columns.values()
        ],
        "(samples)": [f"{sum(s.stacks.values()):16d}" for s, _, _ in columns.values()],
    }
    lines += [f"{name:34}{''.join(cells)}" for name, cells in rows.items()]
    for name, (sampler, _, _) in columns.items():
        total = sum(sampler.stacks.values()) or 1
        where: collections.Counter[tuple[str, str, int]] = collections.Counter()
        for (stack, (function, line)), n in sampler.lines.items():
            where[stage_of(stack), function, line] += n
        if where:
            lines.append(f"\n{name}: the sender's innermost lines, share of all samples")
            lines += [
                f"  {n / total:6.1%}  {stage:24} {function}:{line}"
                for (stage, function, line), n in where.most_common(top)
            ]
    return "\n".join(lines)
