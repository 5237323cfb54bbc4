"""The state of one message and how two states combine (:func:`merge`).

Every event says something about one message, as a one-event
:class:`MessageState` (see :mod:`services.projections.delivery`); a message is
the merge of all of them. :func:`merge` is commutative, associative and
idempotent (earliest time per state, the state machine's highest rank,
``failed`` terminal, history as a set ordered by time), so the same events in
any interleaving, or folded in separate partial states then merged, give the
same message.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

# sent < delivered < read; failed is terminal and outranks everything.
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 9}
# The sender's verdict. An indeterminate send may later be settled by another attempt.
OUTCOME_RANK = {"indeterminate": 1, "rejected": 2, "suppressed": 2, "failed": 2, "accepted": 3}


class Step(NamedTuple):
    """One line of a message's history (a tuple: ordered by time, then event id)."""

    time: datetime
    id: str
    type: str
    what: str


# ``Step(*fields)`` without the named tuple's ``__new__``, a Python function; every
# fact has a step, so this runs once per event folded.
step_of: Callable[[tuple[datetime, str, str, str]], Step] = partial(tuple.__new__, Step)


@dataclass(frozen=True)
class Pricing:
    category: str | None
    billable: bool | None
    type: str | None
    model: str | None


@dataclass(frozen=True)
class MessageState:
    key: str
    command_id: str | None = None
    wamid: str | None = None
    waba_id: str | None = None
    phone_number_id: str | None = None
    recipient: str | None = None
    provider: str | None = None
    campaign_id: str | None = None
    template_name: str | None = None
    template_language: str | None = None
    tracking_token: str | None = None
    endpoint: str | None = None
    requested_at: datetime | None = None
    outcome: str | None = None
    outcome_detail: str | None = None
    status: str | None = None
    times: tuple[tuple[str, datetime], ...] = ()
    pricing: Pricing | None = None
    pricing_from: tuple[int, datetime, str] | None = None
    error_code: int | None = None
    error_title: str | None = None
    error_from: tuple[datetime, str] | None = None
    history: tuple[Step, ...] = ()

    @property
    def state(self) -> str:
        if self.status == "failed" or self.outcome == "failed":
            return "failed"
        return self.status or self.outcome or "requested"

    @property
    def fell_back(self) -> bool:
        """Sent to /marketing_messages but priced as Cloud API marketing: it fell back."""
        return (
            self.endpoint == "marketing_messages"
            and self.pricing is not None
            and self.pricing.category == "marketing"
        )


# ------------------------------------------------------------------ merging
def _pick(a: Any, b: Any) -> Any:
    """Either value when only one is known; the smaller when both are (deterministic)."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    return min(a, b)


def _ranked(a: str | None, b: str | None, rank: dict[str, int]) -> str | None:
    """The higher ranked, then the larger: ``max`` by (rank, value), spelt out (once per
    status, on the fold's hot path; equal values give ``a``, as ``max`` does)."""
    if a is None or b is None:
        return a if b is None else b
    if a == b:
        return a
    return a if (rank.get(a, 0), a) > (rank.get(b, 0), b) else b


def _times(
    a: tuple[tuple[str, datetime], ...], b: tuple[tuple[str, datetime], ...]
) -> tuple[tuple[str, datetime], ...]:
    if not b:
        return a
    if not a:
        return b
    if len(b) == 1:
        new = b[0]
        for name, when in a:
            if name == new[0]:
                if when <= new[1]:
                    # A state reached again, later (a duplicate status): ``a`` already
                    # holds the earlier time. ``a`` is sorted with one entry per name
                    # (facts have one entry, and every merge returns them so), which
                    # is what the general case below would rebuild.
                    return a
                break
        else:  # the usual case: one new state, inserted in place
            merged = list(a)
            insort(merged, new)
            return tuple(merged)
    out = dict(a)
    for name, when in b:
        if name not in out or when < out[name]:
            out[name] = when
    return tuple(sorted(out.items()))


def _history(a: tuple[Step, ...], b: tuple[Step, ...]) -> tuple[Step, ...]:
    # One line per event id: a command published twice keeps its first time.
    if not b:
        return a
    if len(b) == 1:
        step = b[0]
        sid = step.id
        for s in a:
            if s.id == sid:
                break
        else:
            if not a or a[-1] <= step:
                return a + b  # the usual case: the latest step so far, where insort puts it
            merged = list(a)
            insort(merged, step)
            return tuple(merged)
    first: dict[str, Step] = {}
    for step in (*a, *b):
        seen = first.get(step.id)
        if seen is None or step < seen:
            first[step.id] = step
    return tuple(sorted(first.values()))


def merge(a: MessageState, b: MessageState) -> MessageState:
    """Combine what two states know. Commutative, associative, idempotent."""
    if a is b:
        return a
    return absorb(a, b.__dict__)


def absorb(a: MessageState, b: Mapping[str, Any]) -> MessageState:
    """``a`` merged with what ``b`` knows: a state's fields, or only those a one-event
    fact sets (a field ``b`` lacks, or holds as None or empty, is unknown).

    Only what ``b`` knows is looked at: for a field ``b`` leaves unset every rule
    below keeps ``a``'s value, and a one-event fact sets few fields, so this is the
    fold's hot path. :func:`merge` is this rule with a whole state as ``b``.
    """
    mine = a.__dict__
    known = b.get
    changes: dict[str, Any] = {}
    for name in _PICKED:
        value = known(name)
        if value is None:
            continue
        current = mine[name]
        if current is None or (value != current and value < current):
            changes[name] = value
    key = changes.get("command_id", a.command_id) or _pick(a.key, b["key"])
    if key != a.key:
        changes["key"] = key
    outcome, detail = known("outcome"), known("outcome_detail")
    if outcome is not None or detail is not None:
        winner = _ranked(a.outcome, outcome, OUTCOME_RANK)
        detail = (
            _pick(a.outcome_detail, detail)
            if a.outcome == outcome
            else (a.outcome_detail if winner == a.outcome else detail)
        )
        if winner != a.outcome or detail != a.outcome_detail:
            changes["outcome"], changes["outcome_detail"] = winner, detail
    status = known("status")
    if status is not None:
        status = _ranked(a.status, status, STATUS_RANK)
        if status != a.status:
            changes["status"] = status
    times = known("times")
    if times:
        changes["times"] = _times(a.times, times)
    pricing_from = known("pricing_from")
    if pricing_from is not None and (a.pricing_from is None or a.pricing_from < pricing_from):
        changes["pricing"], changes["pricing_from"] = known("pricing"), pricing_from
    error_from = known("error_from")
    if error_from is not None and (a.error_from is None or a.error_from > error_from):
        changes["error_code"], changes["error_title"] = known("error_code"), known("error_title")
        changes["error_from"] = error_from
    history = known("history")
    if history:
        changes["history"] = _history(a.history, history)
    return evolved(a, changes)


_BLANK = MessageState(key="")

# Fields combined by _pick: known on one side, or the same on both, or the smaller.
_PICKED = (
    "command_id",
    "wamid",
    "waba_id",
    "phone_number_id",
    "recipient",
    "provider",
    "campaign_id",
    "template_name",
    "template_language",
    "tracking_token",
    "endpoint",
    "requested_at",
)


def state_with(**fields: Any) -> MessageState:
    """A state with ``fields`` set and the rest at their defaults (see :func:`evolved`)."""
    return evolved(_BLANK, fields)


def evolved(state: MessageState, changes: dict[str, Any]) -> MessageState:
    """A new state: ``state`` with ``changes``. The original is never modified.

    Built without the frozen dataclass's ``__init__`` (one ``object.__setattr__``
    per field), which dominated the fold's cost: every field is copied, then the
    changed ones replaced, so the result is exactly what the constructor makes.
    The fields are copied in one step (``dict.copy``) and given to the new object
    whole: filling its empty ``__dict__`` key by key cost half again as much.
    """
    if not changes:
        return state
    fields = state.__dict__.copy()
    fields.update(changes)
    evolved = _new(MessageState)
    _set(evolved, "__dict__", fields)
    return evolved


_new = object.__new__
_set = object.__setattr__  # the frozen dataclass refuses its own __setattr__
