"""Which offset of a partition may be committed: the lowest unfinished one.

Records finish out of order (recipients run concurrently); the commit only
moves past a record once it and every earlier record have finished. Offsets
need not be contiguous (transaction markers, compaction leave gaps).
"""

from __future__ import annotations

import heapq


class PartitionProgress:
    def __init__(self, start: int) -> None:
        self._start = start
        self._highest_seen = start - 1
        self._open: set[int] = set()
        self._heap: list[int] = []

    def started(self, offset: int) -> None:
        self._open.add(offset)
        heapq.heappush(self._heap, offset)
        self._highest_seen = max(self._highest_seen, offset)

    def finished(self, offset: int) -> None:
        self._open.discard(offset)

    def committable(self) -> int:
        """Commit this offset: every record before it is finished."""
        while self._heap and self._heap[0] not in self._open:
            heapq.heappop(self._heap)
        return self._heap[0] if self._heap else self._highest_seen + 1

    @property
    def in_flight(self) -> int:
        return len(self._open)
