"""How many sends per second the simulator sustains with zero injected latency.

    make bench-simulator        (or: python -m bench.simulator --seconds 10)

Prints the simulator's rate beside a raw ASGI endpoint's (same server, same
load generator, same run) and the ratio. Later benchmarks call the simulator,
so this says whether it could be their bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import orjson
import yaml

from bench.harness import LoadResult, closed_loop, serve, table, wrk, wrk_available
from services.common.ports import free_port

NUMBERS = [f"10654035224{i:04d}" for i in range(5)]


def world_file(directory: Path) -> Path:
    world = {
        "portfolios": [{"id": "1"}],
        "wabas": [{"id": "2", "business_id": "1", "onboarding_status": "ONBOARDED"}],
        "phone_numbers": [
            {
                "id": n,
                "waba_id": "2",
                "display_phone_number": "15550001111",
                "throughput_per_s": 10_000,
            }
            for n in NUMBERS
        ],
        "templates": [
            {"waba_id": "2", "name": "spring_sale", "language": "en_US", "category": "MARKETING"}
        ],
        "pair_limit_s": 0.0,
    }
    path = directory / "bench_world.yaml"
    path.write_text(yaml.safe_dump(world))
    return path


def body(i: int) -> bytes:
    return orjson.dumps(
        {
            "messaging_product": "whatsapp",
            "to": f"4479{i % 1_000_000:08d}",
            "type": "template",
            "template": {"name": "spring_sale", "language": {"code": "en_US"}},
        }
    )


BODY_FORMAT = (
    '{"messaging_product":"whatsapp","to":"4479%08d","type":"template",'
    '"template":{"name":"spring_sale","language":{"code":"en_US"}}}'
)


async def run(seconds: float, concurrency: int) -> None:
    headers = {"Authorization": "Bearer sim-token", "Content-Type": "application/json"}
    with tempfile.TemporaryDirectory() as tmp:
        seed = world_file(Path(tmp))
        port = free_port()
        raw_port = free_port()
        generator = "wrk" if wrk_available() else "httpx (install wrk for real figures)"

        async def load(url: str) -> LoadResult:
            if wrk_available():
                return wrk(url, BODY_FORMAT, headers, connections=concurrency, seconds=seconds)
            return await closed_loop(
                url, body, headers, concurrency=min(concurrency, 8), seconds=seconds
            )

        with serve(["-m", "bench.raw_asgi", "--port", str(raw_port)], raw_port, "/") as raw:
            baseline = await load(raw + "/v23.0/x/marketing_messages")
        with serve(
            ["-m", "services.cli", "simulator", "--port", str(port), "--seed", str(seed)],
            port,
            "/_admin/health",
            env={"MMBUS_SIMULATOR_MAX_RECORDED_CALLS": "0"},
        ) as sim:
            url = f"{sim}/v23.0/{NUMBERS[0]}/marketing_messages"
            result = await load(url)
    print(
        f"simulator, zero latency, webhooks off, {concurrency} connections, {seconds:.0f}s each, "
        f"load from {generator}"
    )
    print(
        table(
            [("raw ASGI baseline", baseline), ("simulator /marketing_messages", result)], baseline
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
