"""Webhooks per second one ingest process acknowledges (200 after Kafka has them).

    make bench-ingest        (or: python -m bench.ingest --seconds 10)

Loads ``POST /webhooks/meta`` with signed status webhooks from wrk (64
connections), beside raw baselines measured in the same run: a bare ASGI
endpoint that does the same Kafka write (acks=all, idempotent, the same key and
the same eight CloudEvents headers, with fixed values) and nothing else, and
the same endpoint writing the body alone (no key, no headers). Ratios are
against the first.
Then measures p50/p99 latency at half the ingest rate with an open-loop
generator. Broker: ``KAFKA_BOOTSTRAP_SERVERS`` or the project's local broker.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import uuid
from contextlib import ExitStack

from bench.harness import LoadResult, serve, wrk, wrk_available
from mmbus.contracts.topics import Stream, topic_name
from services.common.kafka_admin import ensure_project_topics
from services.common.ports import free_port
from services.common.settings import CommonSettings
from services.simulator import webhooks

SECRET = "bench-app-secret"
BODIES = 500


def bodies() -> list[bytes]:
    return [
        webhooks.encode(
            webhooks.status(
                waba_id="102290129340398",
                phone_number_id="106540352242922",
                display_phone_number="1",
                wamid=f"wamid.BENCH{i:08d}",
                status="delivered",
                timestamp=1772442910 + i,
                recipient_id="447911123456",
                pricing_category="marketing_lite",
            )
        )
        for i in range(BODIES)
    ]


def signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def pause(delay_ms: float) -> str:
    """wrk pauses in whole milliseconds: alternate floor and ceiling to average ``delay_ms``."""
    if delay_ms <= 0:
        return ""
    base = int(delay_ms)
    frac = delay_ms - base
    return (
        f"delay = function() if math.random() < {frac:.3f} then return {base + 1} end "
        f"return {base} end"
    )


def lua(all_bodies: list[bytes], delay_ms: float = 0.0) -> str:
    """A wrk script cycling through pre-signed bodies (wrk's Lua has no HMAC).

    ``delay_ms`` paces each connection (wrk's delay hook) for a fixed offered load.
    """
    rows = ",\n".join(f'{{[=[{b.decode()}]=], "{signature(b)}"}}' for b in all_bodies)
    return f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {{
{rows}
}}
local i = 0
{pause(delay_ms)}
request = function()
  i = i % #bodies + 1
  wrk.headers["X-Hub-Signature-256"] = bodies[i][2]
  return wrk.format(nil, nil, nil, bodies[i][1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def run(bootstrap: str, seconds: float) -> None:
    all_bodies = bodies()
    script = lua(all_bodies)
    prefix = f"bench-ingest-{uuid.uuid4().hex[:6]}."
    settings = CommonSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=6)
    asyncio.run(ensure_project_topics(settings))
    raw_topic = topic_name(Stream.RAW_WEBHOOKS, prefix)

    def load(url: str) -> LoadResult:
        return wrk(url, "", {}, connections=64, seconds=seconds, script=script)

    def baseline_run(*extra: str) -> LoadResult:
        port = free_port()
        command = ["-m", "bench.raw_ingest", "--port", str(port), "--bootstrap", bootstrap]
        with serve([*command, "--topic", raw_topic, *extra], port, "/") as base:
            return load(f"{base}/webhooks/meta")

    baseline = baseline_run("--same-record")
    value_only = baseline_run()
    port = free_port()
    env = {
        "MMBUS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MMBUS_TOPIC_PREFIX": prefix,
        "MMBUS_PARTITIONS": "6",
        "MMBUS_INGEST_APP_SECRETS": f'["{SECRET}"]',
        "MMBUS_LOG_LEVEL": "WARNING",
    }
    with serve(
        ["-m", "services.cli", "ingest", "--port", str(port), "--no-normalizer"],
        port,
        "/health",
        env=env,
    ) as base:
        result = load(f"{base}/webhooks/meta")
        # Half load: 64 paced connections. Each cycle is the pause plus the request's
        # own latency, so a first run measures that latency and a second one corrects
        # the pause to offer half the rate measured above.
        connections = 64
        target = result.rps / 2
        delay_ms = 1000 * connections / target

        def paced(pause_ms: float) -> LoadResult:
            return wrk(
                f"{base}/webhooks/meta",
                "",
                {},
                connections=connections,
                seconds=seconds,
                script=lua(all_bodies, max(pause_ms, 1.0)),
            )

        half = paced(delay_ms)
        cycle_ms = 1000 * connections / max(half.rps, 1.0)
        latency_ms = max(cycle_ms - delay_ms, 0.0)
        half = paced(1000 * connections / target - latency_ms)
    print(
        f"ingest: signed status webhooks, 64 connections (wrk), {seconds:.0f}s each; "
        "200 only after Kafka acks"
    )
    print(f"{'':31} {'webhooks/s':>10} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7}")
    rows = (
        ("raw ASGI + producer", baseline),
        ("  (value only, no key/headers)", value_only),
        ("mmbus ingest", result),
    )
    for name, r in rows:
        print(
            f"{name:31} {r.rps:10.0f} {r.rps / baseline.rps:6.2f} "
            f"{r.percentile(50):7.1f} {r.percentile(99):7.1f} {r.errors:7d}"
        )
    print(
        f"{'mmbus ingest at ~half load':31} {half.rps:10.0f} {'':>6} "
        f"{half.percentile(50):7.1f} {half.percentile(99):7.1f} {half.errors:7d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if not wrk_available():
        raise SystemExit("wrk is needed: run `make bench-ingest`, which installs it")
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from services.localkafka import broker

            bootstrap = broker.up("bench", free_ports=True).instance.bootstrap_servers
            stack.callback(broker.down, "bench", purge=True)
        run(bootstrap, args.seconds)


if __name__ == "__main__":
    main()
