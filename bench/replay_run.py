"""One replay, or one raw consumption, in a process of its own: what ``bench/replay.py``
times, as ``mmbus replay`` runs (a fresh process each time).

Replays run one after another in the benchmark's own process came out slower
each time (the second of two identical replays by 5-10 %, with the heap the
first left behind), so whichever configuration ran later in a round (SQLite
after memory, two workers after both) paid for the others. Prints one JSON
line: wall seconds and CPU seconds (this process and its workers) of the
replay alone, not of starting Python, and the replay's report and stages.

    python -m bench.replay_run --bootstrap 127.0.0.1:9092 --prefix bench-replay-x. --workers 2
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time
from typing import Any

import orjson

from bench.harness import run_loop
from services.common.logging import configure_logging
from services.common.settings import CommonSettings
from services.projections.projection import choose
from services.projections.replay import replay
from services.projections.shard import Stages


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


async def one(settings: CommonSettings, workers: int, store: str | None) -> dict[str, Any]:
    stages = Stages()
    started, cpu_started = time.perf_counter(), cpu()
    report = await replay(settings, choose(None), store_url=store, workers=workers, stages=stages)
    return {
        "seconds": time.perf_counter() - started,
        "cpu": cpu() - cpu_started,
        "report": report.as_dict(),
        "stages": dataclasses.asdict(stages),
    }


async def raw(settings: CommonSettings) -> dict[str, Any]:
    from bench.replay import raw_consume

    count, seconds, cpu_s = await raw_consume(settings)
    return {"records": count, "seconds": seconds, "cpu": cpu_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--store")
    parser.add_argument("--raw", action="store_true", help="raw aiokafka consumption")
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    settings = CommonSettings(
        kafka_bootstrap_servers=args.bootstrap,
        topic_prefix=args.prefix,
        partitions=6,
        log_level="WARNING",
    )
    work = raw(settings) if args.raw else one(settings, args.workers, args.store)
    print(orjson.dumps(run_loop(work)).decode())


if __name__ == "__main__":
    main()
