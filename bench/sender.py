"""Sustained sends per second of one sender process against the simulator.

    make bench-sender        (or: python -m bench.sender --commands 6000)

For each API latency (0 ms and 50 ms, injected by the simulator) it runs, on the
same broker and the same simulator, in this order:

- **raw**: a minimal aiokafka consume -> HTTP POST -> aiokafka produce loop with
  the same concurrency and none of the features (no decoding, routing, pacing,
  durable attempt, ledger, per-recipient order), once over httpx (the baseline
  the sender is held to) and once over aiohttp (the sender's default client),
  then over aiohttp with one more acknowledged produce before each POST (the
  sender's durable attempt), to show what that requirement alone costs;
- **naive**: a FastStream handler that awaits each call in turn;
- **mmbus**: the real sender (`services.sender`), all guarantees on, with its
  default HTTP client (aiohttp) and with httpx (HTTP/2 capable).

The machine is shared (the broker and the simulator run on the same cores, and
often someone else's work): the raw aiohttp loop and the sender over aiohttp,
the pair the target is set on, run ``--rounds`` times (2 by default), one right
after the other each round, and the table gives each loop's best, as the replay
benchmark does; each round's pair is printed too, so the spread is seen.

Ratios are printed against both raw loops: against raw httpx, and against the
raw loop that uses the same HTTP client as the row.

Each works through a backlog of the same commands (5 numbers, distinct
recipients) and reports sends per second, the ratio to raw, and p50/p99 of
command-to-result latency: from when the process read the command to when its
result event was acknowledged by Kafka. The simulator runs in its own process;
the broker is ``KAFKA_BOOTSTRAP_SERVERS`` or the project's local broker.

Every loop runs in this process as the sender service runs: on uvloop, and with
the garbage collector set up by :func:`services.sender.runtime.tune_gc` (the
objects that exist at its start frozen, young collections less frequent).

It also prints the CPU time this process spent per send over the timed window
and what that implies with one whole core (1 / CPU per send): on a machine whose
cores are shared with the broker and the simulator, sends/s measures the share of
CPU the loop got, and the ceiling says what the loop itself costs.

    python -m bench.sender --stages [--latency-ms 0]

runs only the raw aiohttp loop with the attempt and the sender over aiohttp, and
prints where each spends its CPU per send, stage by stage (decode, route,
lanes, pacer, build events, encode, produce, ledger, metrics, logs, spans,
HTTP...), sampled on CPU time by :mod:`bench.sender_stages`. The loops
themselves are in :mod:`bench.sender_loops`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import yaml

from bench.harness import run_loop, serve
from bench.sender_loops import (
    CONCURRENCY,
    NUMBERS,
    WABA,
    Run,
    fresh,
    prepare,
    run_mmbus,
    run_naive,
    run_raw,
)
from bench.sender_stages import StageSampler
from bench.sender_stages import table as stage_table
from mmbus.contracts.commands import SendTemplate
from mmbus.publisher import send_template
from services.common.ports import free_port
from services.common.settings import CommonSettings
from services.sender.runtime import tune_gc


# ----------------------------------------------------------------------- main
def world(directory: Path) -> Path:
    data = {
        "portfolios": [{"id": "1"}],
        "wabas": [{"id": WABA, "business_id": "1", "onboarding_status": "ONBOARDED"}],
        "phone_numbers": [
            {
                "id": n,
                "waba_id": WABA,
                "display_phone_number": "15550001111",
                "throughput_per_s": 1000,
            }
            for n in NUMBERS
        ],
        "templates": [
            {"waba_id": WABA, "name": "spring_sale", "language": "en_US", "category": "MARKETING"}
        ],
        "pair_limit_s": 0.0,
    }
    path = directory / "world.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def commands(n: int) -> list[SendTemplate]:
    return [
        send_template(
            waba_id=WABA,
            phone_number_id=NUMBERS[i % len(NUMBERS)],
            to=f"447{700000000 + i}",
            template_name="spring_sale",
            language="en_US",
            category="MARKETING",
            source="bench",
        )
        for i in range(n)
    ]


def _table(runs: list[Run]) -> str:
    raw = {r.http: r for r in runs if r.baseline}
    lines = [
        f"{'':30} {'sends/s':>8} {'vs raw httpx':>13} {'vs raw same client':>19} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'sends':>7} {'CPU ms/send':>12} {'1-core ceiling/s':>17}"
    ]
    for r in runs:
        lines.append(
            f"{r.name:30} {r.rate:8.0f} {r.rate / raw['httpx'].rate:13.2f} "
            f"{r.rate / raw[r.http].rate:19.2f} "
            f"{r.pct(50):8.1f} {r.pct(99):8.1f} {r.sends:7d} "
            f"{r.cpu_ms_per_send:12.2f} {r.ceiling:17.0f}"
        )
    return "\n".join(lines)


def _variants(
    sim: str, n: int, naive_s: float, stages: dict[str, StageSampler] | None
) -> list[tuple[str, Callable[[CommonSettings], Awaitable[Run]]]]:
    if stages is not None:
        # The stage profile: the sender and the raw loop that also writes its attempt.
        raw, mmbus = stages["raw +attempt"], stages["mmbus aiohttp"]
        return [
            (
                "raw-aiohttp-attempt",
                lambda s: run_raw(s, sim, n, "aiohttp", attempt_first=True, window=raw),
            ),
            ("mmbus-aiohttp", lambda s: run_mmbus(s, sim, n, "aiohttp", window=mmbus)),
        ]
    return [
        ("raw-httpx", lambda s: run_raw(s, sim, n, "httpx")),
        ("raw-aiohttp", lambda s: run_raw(s, sim, n, "aiohttp")),
        ("raw-aiohttp-attempt", lambda s: run_raw(s, sim, n, "aiohttp", attempt_first=True)),
        ("naive", lambda s: run_naive(s, sim, n, naive_s)),
        ("mmbus-aiohttp", lambda s: run_mmbus(s, sim, n, "aiohttp")),
        ("mmbus-httpx", lambda s: run_mmbus(s, sim, n, "httpx")),
    ]


# The pair the target is set on: run again in later rounds, each right after the other.
PAIRED = ("raw-aiohttp", "mmbus-aiohttp")


def _paired(
    variants: list[tuple[str, Callable[[CommonSettings], Awaitable[Run]]]],
) -> list[tuple[str, Callable[[CommonSettings], Awaitable[Run]]]]:
    return [(name, run) for name, run in variants if name in PAIRED]


def _rounds(tries: dict[str, list[Run]]) -> str:
    """Each round's figures for the paired loops, so the spread is seen, not only the best."""
    raw, mmbus = tries[PAIRED[0]], tries[PAIRED[1]]
    pairs = zip(raw, mmbus, strict=True)
    each = ", ".join(f"{m.rate:.0f}/{r.rate:.0f} = {m.rate / r.rate:.2f}" for r, m in pairs)
    return (
        f"rounds (mmbus aiohttp / raw aiohttp, sends/s): {each}; "
        f"the table gives each loop's best of {len(raw)}"
    )


async def bench(
    bootstrap: str,
    n: int,
    latencies_ms: list[int],
    naive_s: float,
    *,
    stages: bool = False,
    rounds: int = 2,
) -> None:
    base = CommonSettings(kafka_bootstrap_servers=bootstrap, partitions=6, log_level="WARNING")
    batch = commands(n)
    with tempfile.TemporaryDirectory() as tmp:
        seed = world(Path(tmp))
        for latency in latencies_ms:
            port = free_port()
            samplers = {"raw +attempt": StageSampler(), "mmbus aiohttp": StageSampler()}
            with serve(
                ["-m", "services.cli", "simulator", "--port", str(port), "--seed", str(seed)],
                port,
                "/_admin/health",
                env={"MMBUS_SIMULATOR_MAX_RECORDED_CALLS": "0", "MMBUS_LOG_LEVEL": "WARNING"},
            ) as sim:
                async with httpx.AsyncClient() as admin:
                    fixed = {"latency": {"distribution": "fixed", "ms": latency}}
                    await admin.put(f"{sim}/_admin/faults", json=fixed)
                tries: dict[str, list[Run]] = {}
                variants = _variants(sim, n, naive_s, samplers if stages else None)
                for round_ in range(1 if stages else rounds):
                    for name, run in variants if round_ == 0 else _paired(variants):
                        settings = fresh(base, name)
                        await prepare(settings, batch)
                        tune_gc()  # every loop runs as the sender service runs
                        tries.setdefault(name, []).append(await run(settings))
            runs = [max(tried, key=lambda r: r.rate) for tried in tries.values()]
            print(f"\nAPI latency {latency} ms, {n} commands, 5 numbers, concurrency {CONCURRENCY}")
            if not stages and rounds > 1:
                print(_rounds(tries))
            if stages:
                measured = [(r.cpu_ms_per_send, r.sends) for r in runs]
                columns = zip(samplers.items(), measured, strict=True)
                print(stage_table({k: (v, cpu, sends) for (k, v), (cpu, sends) in columns}))
            else:
                print(_table(runs))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=6000)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50])
    parser.add_argument("--naive-seconds", type=float, default=10.0)
    parser.add_argument(
        "--stages", action="store_true", help="CPU per send by stage (sender, raw loop) only"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="runs of the raw aiohttp loop and the sender over aiohttp, in turn; best of each",
    )
    args = parser.parse_args()
    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from services.localkafka import broker

            bootstrap = broker.up("bench", free_ports=True).instance.bootstrap_servers
            stack.callback(broker.down, "bench", purge=True)
        run_loop(
            bench(
                bootstrap,
                args.commands,
                args.latency_ms,
                args.naive_seconds,
                stages=args.stages,
                rounds=args.rounds,
            )
        )


if __name__ == "__main__":
    main()
