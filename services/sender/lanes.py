"""Per-recipient lanes: strictly in order within one (number, recipient), concurrent across.

One slow or retrying recipient blocks nobody else, and two commands to the same
user from the same number never overtake each other. The lane also remembers
when it last sent, for the pair limit (one message per window to one user).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

LaneKey = tuple[str, str]


class _Turn:
    """One command's place in its lane. The future the next command waits on is made
    only when a next command comes: most recipients get one command at a time, and
    making a future asks the running loop, which is a system call (getpid) each time."""

    __slots__ = ("_done", "_future")

    def __init__(self) -> None:
        self._done = False
        self._future: asyncio.Future[None] | None = None

    def finished(self) -> asyncio.Future[None]:
        """Resolved once this command is done (already, if it is)."""
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
            if self._done:
                self._future.set_result(None)
        return self._future

    def finish(self) -> None:
        self._done = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)


class Lanes:
    def __init__(self) -> None:
        self._tails: dict[LaneKey, _Turn] = {}
        self._last_sent: dict[LaneKey, float] = {}

    def __len__(self) -> int:
        """Lanes with a command queued or running."""
        return len(self._tails)

    async def run(self, key: LaneKey, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` after every earlier command of the same lane."""
        previous = self._tails.get(key)
        mine = self._tails[key] = _Turn()
        try:
            if previous is not None:
                # Shielded: cancelling this command (a drain) must not cancel the future
                # of the one before it, which would then fail to resolve it.
                await asyncio.shield(previous.finished())
            await work()
        finally:
            mine.finish()
            if self._tails.get(key) is mine:
                del self._tails[key]

    def sent(self, key: LaneKey, at: float) -> None:
        self._last_sent[key] = at

    def pair_gap(self, key: LaneKey, now: float, window_s: float) -> float:
        """Seconds to wait before the next send to this user from this number."""
        last = self._last_sent.get(key)
        return 0.0 if last is None else max(0.0, window_s - (now - last))
