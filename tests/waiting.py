"""Waiting for a condition with a deadline, instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    within_s: float = 30.0,
    poll_s: float = 0.05,
    what: str = "the condition",
) -> None:
    """Return as soon as ``check()`` holds; fail with ``what`` once ``within_s`` has passed.

    ``poll_s`` only spaces the checks: the wait ends at the first check that holds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        held = check()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not hold within {within_s} s")
        await asyncio.sleep(poll_s)
