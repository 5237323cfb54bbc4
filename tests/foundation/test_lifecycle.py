"""SIGTERM lets a service finish its in-flight work and exit cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent(
    """
    import asyncio, sys
    from services.common.lifecycle import run_until_stopped
    from services.common.logging import configure_logging

    configure_logging("INFO", "json")

    async def main(stop):
        print("started", flush=True)
        await stop.wait()
        await asyncio.sleep(0)  # in-flight work finishing: it gets to run after the signal
        print("flushed", flush=True)

    asyncio.run(run_until_stopped(main))
    print("exited", flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gracefully(signum: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.split() == ["flushed", "exited"]
    assert f'"signal":"{signum.name}"' in err
    assert "shutdown requested" in err
