"""Stopping commands without making their outcome unknown.

When a partition is revoked (or the sender shuts down), commands still running
after the drain's limit must stop: the partition's next owner takes them over.
Cancelling a command in the middle of its HTTP call would leave an attempt
that may or may not have reached the API, which the next owner can only report
as ``send.indeterminate``. So a command in a call is not cancelled: it is asked
to stop, finishes the call (bounded by the connect and read timeouts), writes
what the API answered, and stops before another attempt. Everything else (a
command pacing, backing off or waiting in its lane) is cancelled at once.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any


class Stops:
    """Which command tasks are in an API call now, and which were asked to stop."""

    def __init__(self) -> None:
        self._calling: set[asyncio.Task[Any]] = set()
        self._asked: set[asyncio.Task[Any]] = set()

    def calling(self) -> _Calling:
        """Around an API call: the drain waits for it rather than cancel it."""
        return _Calling(self)

    def stop(self, task: asyncio.Task[Any]) -> None:
        """Cancel the task now, or, in a call, once the call's answer is written."""
        if task in self._calling:
            self._asked.add(task)
        else:
            task.cancel()

    def check(self) -> None:
        """Raise CancelledError in a command that was asked to stop during its call."""
        task = asyncio.current_task()
        if task is not None and task in self._asked:
            self._asked.discard(task)
            raise asyncio.CancelledError("asked to stop after its call")

    def forget(self, task: asyncio.Task[Any]) -> None:
        self._asked.discard(task)


class _Calling:
    __slots__ = ("_stops", "_task")

    def __init__(self, stops: Stops) -> None:
        self._stops = stops
        self._task: asyncio.Task[Any] | None = None

    def __enter__(self) -> None:
        self._task = asyncio.current_task()
        if self._task is not None:
            self._stops._calling.add(self._task)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._stops._calling.discard(self._task)
