"""A part started through services.common.child dies when its parent is SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
PARENT = """
import os, subprocess, sys
child = subprocess.Popen(
    [sys.executable, "-m", "services.common.child", str(os.getpid()), "tests.foundation.forever"],
    start_new_session=True,
)
print(child.pid, flush=True)
sys.stdin.read()
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
async def test_a_child_dies_with_its_parent_killed_by_sigkill() -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PARENT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert parent.stdout is not None
    child = int(await parent.stdout.readline())
    try:
        assert _running(child)
        parent.kill()
        await parent.wait()
        await eventually(
            lambda: not _running(child), within_s=30, what="the child ending with its parent"
        )
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)


def test_a_child_whose_parent_is_already_gone_does_not_start() -> None:
    not_the_parent = str(os.getpid() + 1)  # the child's parent is this process
    done = subprocess.run(
        [sys.executable, "-m", "services.common.child", not_the_parent, "tests.foundation.forever"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode != 0
    assert f"parent {not_the_parent} is gone" in done.stderr
