"""What every benchmark shares: servers in their own process, a closed-loop load generator.

Servers run in a subprocess so the load generator and the server each get a
core of this two-core machine; both the subject and its raw baseline are
measured the same way in the same run, and the ratio is what to compare.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx


@contextmanager
def serve(
    args: list[str], port: int, ready_path: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run a server command; yield its base URL once ``ready_path`` answers; stop it after.

    Its output goes to a temporary file, never to an unread pipe: a server that
    logs more than a pipe holds (64 KiB) would block on its next log line.
    """
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )

        def tail() -> str:
            output.seek(0)
            return output.read().decode(errors="replace")[-3000:]

        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited: {tail()}")
                try:
                    if httpx.get(base + ready_path, timeout=1).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not become ready: {tail()}")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        if p == 50 and self.p50_ms is not None:
            return self.p50_ms
        if p == 99 and self.p99_ms is not None:
            return self.p99_ms
        if not self.latencies_ms:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(p) - 1]


async def closed_loop(
    url: str,
    body: Callable[[int], bytes],
    headers: dict[str, str],
    *,
    concurrency: int,
    seconds: float,
    ok_status: int = 200,
) -> LoadResult:
    """``concurrency`` workers each send one request after the other for ``seconds``."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0
    counter = 0
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors, counter
            while time.perf_counter() < deadline:
                counter += 1
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=body(counter), headers=headers)
                    if response.status_code != ok_status:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(len(latencies), errors, elapsed, latencies)


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format([[%(body)s]], counter %% 1000000))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk(
    url: str,
    body_format: str,
    headers: dict[str, str],
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    script: str | None = None,
) -> LoadResult:
    """Load from wrk (C): a generator far cheaper than the server it measures.

    ``body_format`` is a Lua format string with one ``%d`` (a request counter);
    or ``script`` is a whole wrk Lua script that writes the same RESULT line.
    Non-2xx answers count as errors.
    """
    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script_file:
        script_file.write(script or _WRK_SCRIPT % {"headers": header_lines, "body": body_format})
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "--latency",
            "-s",
            script_file.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    os.unlink(script_file.name)
    line = next(row for row in out.splitlines() if row.startswith("RESULT "))
    requests, duration_us, p50_us, p99_us, errors = (int(x) for x in line.split()[1:])
    # wrk reports percentiles only; keep them as the two-point latency record.
    return LoadResult(
        requests, errors, duration_us / 1e6, [], p50_ms=p50_us / 1000, p99_ms=p99_us / 1000
    )


def table(rows: list[tuple[str, LoadResult]], baseline: LoadResult) -> str:
    lines = [f"{'':28} {'req/s':>9} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7}"]
    for name, r in rows:
        lines.append(
            f"{name:28} {r.rps:9.0f} {r.rps / baseline.rps:6.2f} "
            f"{r.percentile(50):7.1f} {r.percentile(99):7.1f} {r.errors:7d}"
        )
    return "\n".join(lines)


T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a benchmark on uvloop, as the services run (``services.common.lifecycle``)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main)
    return uvloop.run(main)
