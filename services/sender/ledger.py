"""What the send-event log says about each command: the sender's memory of its own work.

Folded from the co-partitioned send-event partitions when a partition is
assigned (:mod:`services.sender.ledger_rebuild`) and kept current as the sender
writes. It is what makes a redelivered command safe: one with a result is
skipped, one with an open attempt (no result, not closed by
``send.attempt_failed``) is reported, never resent blindly; one whose attempts
all ended without a message is resumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import (
    SendAccepted,
    SendAttempted,
    SendAttemptFailed,
    SendFailed,
    SendIndeterminate,
    SendRejected,
    SendSuppressed,
)

TERMINAL = (SendAccepted, SendFailed, SendSuppressed, SendRejected, SendIndeterminate)
TERMINAL_TYPES = frozenset(str(kind.model_fields["type"].default) for kind in TERMINAL)


@dataclass
class LedgerEntry:
    """What the send-event log says about one command id."""

    attempts: int = 0
    # The highest attempt known to have ended without the API having the message.
    closed: int = 0
    terminal: bool = False
    in_flight: bool = False

    @property
    def open_attempt(self) -> bool:
        """An attempt may have reached the API and its outcome is not in the log."""
        return self.attempts > self.closed


@dataclass
class Ledger:
    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    # Rejections of records that are no command (maybe without a command id), by event id.
    rejections: set[str] = field(default_factory=set)

    def get(self, command_id: str) -> LedgerEntry:
        # Not setdefault: that would build an entry on each of a send's four look-ups.
        entry = self.entries.get(command_id)
        if entry is None:
            entry = self.entries[command_id] = LedgerEntry()
        return entry

    def rejected(self, rejection_id: str) -> bool:
        return rejection_id in self.rejections

    def apply(self, event: Message) -> None:
        # By the event's type, resolved once per class: isinstance against a pydantic
        # model class that does not match calls the metaclass's __instancecheck__ in
        # Python, and the sender applies two events per send.
        kind = type(event)
        fold = _FOLDS[kind] if kind in _FOLDS else _fold_of(kind)
        if fold is not None:
            fold(self, event)

    def _rejected(self, event: SendRejected) -> None:
        self.rejections.add(event.id)
        self._terminal(event)

    def _attempted(self, event: SendAttempted) -> None:
        entry = self.get(event.data.command_id)
        entry.attempts = max(entry.attempts, event.data.attempt)

    def _attempt_failed(self, event: SendAttemptFailed) -> None:
        # Written after its send.attempted; max() keeps either order right.
        entry = self.get(event.data.command_id)
        entry.attempts = max(entry.attempts, event.data.attempt)
        entry.closed = max(entry.closed, event.data.attempt)

    def _terminal(
        self, event: SendAccepted | SendFailed | SendSuppressed | SendRejected | SendIndeterminate
    ) -> None:
        if event.data.command_id:
            self.get(event.data.command_id).terminal = True


Fold = Callable[[Ledger, Any], None]
_BY_CLASS: dict[type[Message], Fold] = {
    SendRejected: Ledger._rejected,
    SendAttempted: Ledger._attempted,
    SendAttemptFailed: Ledger._attempt_failed,
    **{kind: Ledger._terminal for kind in TERMINAL if kind is not SendRejected},
}
# Every class met so far, a subclass too (by its nearest folded base), or None.
_FOLDS: dict[type, Fold | None] = dict(_BY_CLASS)


def _fold_of(kind: type) -> Fold | None:
    fold = next((_BY_CLASS[base] for base in kind.__mro__ if base in _BY_CLASS), None)
    _FOLDS[kind] = fold
    return fold
