"""Which offset of a partition may be committed: the lowest unfinished one.

Records finish out of order (recipients run concurrently); the commit only
moves past a record once it and every earlier record have finished. Offsets
need not be contiguous (transaction markers, compaction leave gaps).
"""

from __future__ import annotations

import heapq
import json


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


class LedgerCheckpoint:
    """From which send-events offset a partition's next owner must rebuild its ledger.

    The ledger must hold every send event of every command at or after the
    committed offset C: a redelivered command with a result must be skipped,
    one with an open attempt reported. Scanning the whole send-events partition
    on every assignment grows with the log's age, so the bound travels with the
    commit (in its metadata) and is the lowest of:

    - the send-events position (the next offset) when each command at or after
      C started its work: nothing it writes can come before that;
    - the position now, for commands not started yet;
    - while C is below the end the command partition had when this owner
      rebuilt its ledger: the first event that rebuild read at or after its
      predecessor's checkpoint, because those events belong to commands before
      that end and earlier owners may have left results for commands this owner
      has not reached yet (no such event: nothing to keep).

    A result is only ever written after its command exists, which is what makes
    the third bound sufficient. Pure: positions and offsets go in, an offset
    comes out.
    """

    def __init__(
        self, *, earlier_results_from: int | None, scanned_to: int, commands_end: int
    ) -> None:
        self._earlier_results_from = earlier_results_from
        self._commands_end = commands_end
        self._position = scanned_to
        self._started_at: dict[int, int] = {}  # command offset -> position when it started

    def started(self, command_offset: int) -> None:
        self._started_at.setdefault(command_offset, self._position)

    def wrote(self, event_offset: int) -> None:
        self._position = max(self._position, event_offset + 1)

    def scan_from(self, committed: int) -> int:
        """The send-events offset to rebuild from, for a commit of ``committed``."""
        for offset in [o for o in self._started_at if o < committed]:
            del self._started_at[offset]  # before the commit: never redelivered
        bound = min(self._started_at.values(), default=self._position)
        if committed < self._commands_end and self._earlier_results_from is not None:
            bound = min(bound, self._earlier_results_from)
        return min(bound, self._position)


CHECKPOINT_KEY = "send_events_from"


def checkpoint_metadata(scan_from: int) -> str:
    """The commit metadata that carries the checkpoint (small JSON, under Kafka's 4 KiB)."""
    return f'{{"{CHECKPOINT_KEY}":{scan_from}}}'


def checkpoint_from_metadata(metadata: str | None) -> int | None:
    """The checkpoint in a commit's metadata; None when absent or unreadable (scan it all)."""
    if not metadata:
        return None
    try:
        value = json.loads(metadata).get(CHECKPOINT_KEY)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def rebuild_from(*, beginning: int, checkpoint: int | None, window_start: int) -> int:
    """Where a partition's ledger rebuild starts reading the send events.

    Results of commands not yet committed lie at or after ``checkpoint`` (the whole
    log when there is none); a command id published again is recognised if its old
    result lies at or after ``window_start`` (the first event inside the idempotency
    window; 0 for no limit). Both must be read, and nothing before the log's
    ``beginning`` can be.
    """
    committed_from = beginning if checkpoint is None else max(beginning, checkpoint)
    return max(beginning, min(committed_from, window_start))
