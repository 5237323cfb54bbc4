"""Delivery: what became of each message, from the command to the last status webhook.

A message is known by its command id (the sender's events, and status webhooks
that echo ``mmbus:<command_id>`` in ``biz_opaque_callback_data``) and by its
wamid (``send.accepted`` and every status). A status that names only a wamid
nobody has linked yet is kept under ``w:<wamid>`` and merged into the command's
message once ``send.accepted`` links the two.

The state is built so that order never matters: every event becomes a
one-event :class:`MessageState` and :func:`merge` combines two states with
commutative, associative and idempotent rules (earliest time per state, the
state machine's highest rank, ``failed`` terminal, history as a set ordered by
time). Statuses arrive on another stream than the send events, late and
duplicated; the same events in any interleaving give the same state, so a
replay's digest equals the live one.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from mmbus.contracts.callback import command_id_from_callback
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import (
    SendAccepted,
    SendAttempted,
    SendFailed,
    SendIndeterminate,
    SendRejected,
    SendSuppressed,
)
from mmbus.contracts.webhook_events import MarketingLinkClicked, MessageStatus

# sent < delivered < read; failed is terminal and outranks everything.
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 9}
# The sender's verdict. An indeterminate send may later be settled by another attempt.
OUTCOME_RANK = {"indeterminate": 1, "rejected": 2, "suppressed": 2, "failed": 2, "accepted": 3}
TRACKING_TOKEN_LABEL = "tracking_token"  # noqa: S105 - a label name, not a secret


class Step(NamedTuple):
    """One line of a message's history (a tuple: ordered by time, then event id)."""

    time: datetime
    id: str
    type: str
    what: str


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
    if a is None or b is None:
        return a if b is None else b
    return max(a, b, key=lambda s: (rank.get(s, 0), s))


def _times(
    a: tuple[tuple[str, datetime], ...], b: tuple[tuple[str, datetime], ...]
) -> tuple[tuple[str, datetime], ...]:
    if not b:
        return a
    if not a:
        return b
    if len(b) == 1 and all(name != b[0][0] for name, _ in a):
        merged = list(a)  # the usual case: one new state, inserted in place
        insort(merged, b[0])
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
        if all(s.id != step.id for s in a):
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
    """Combine what two states know. Commutative, associative, idempotent.

    Only what ``b`` knows is looked at: for a field ``b`` leaves unset (None or
    empty) every rule below keeps ``a``'s value, and a one-event fact sets few
    fields, so this is the fold's hot path.
    """
    if a is b:
        return a
    mine, theirs = a.__dict__, b.__dict__
    changes: dict[str, Any] = {}
    for name in _PICKED:
        value = theirs[name]
        if value is None:
            continue
        current = mine[name]
        if current is None or (value != current and value < current):
            changes[name] = value
    key = changes.get("command_id", a.command_id) or _pick(a.key, b.key)
    if key != a.key:
        changes["key"] = key
    if b.outcome is not None or b.outcome_detail is not None:
        outcome = _ranked(a.outcome, b.outcome, OUTCOME_RANK)
        detail = (
            _pick(a.outcome_detail, b.outcome_detail)
            if a.outcome == b.outcome
            else (a.outcome_detail if outcome == a.outcome else b.outcome_detail)
        )
        if outcome != a.outcome or detail != a.outcome_detail:
            changes["outcome"], changes["outcome_detail"] = outcome, detail
    if b.status is not None:
        status = _ranked(a.status, b.status, STATUS_RANK)
        if status != a.status:
            changes["status"] = status
    if b.times:
        changes["times"] = _times(a.times, b.times)
    if b.pricing_from is not None and (a.pricing_from is None or a.pricing_from < b.pricing_from):
        changes["pricing"], changes["pricing_from"] = b.pricing, b.pricing_from
    if b.error_from is not None and (a.error_from is None or a.error_from > b.error_from):
        changes["error_code"], changes["error_title"] = b.error_code, b.error_title
        changes["error_from"] = b.error_from
    if b.history:
        changes["history"] = _history(a.history, b.history)
    return _evolved(a, changes)


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


def _state(**fields: Any) -> MessageState:
    """A state with ``fields`` set and the rest at their defaults (see :func:`_evolved`)."""
    return _evolved(_BLANK, fields)


def _evolved(state: MessageState, changes: dict[str, Any]) -> MessageState:
    """A new state: ``state`` with ``changes``. The original is never modified.

    Built without the frozen dataclass's ``__init__`` (one ``object.__setattr__``
    per field), which dominated the fold's cost: every field is copied, then the
    changed ones replaced, so the result is exactly what the constructor makes.
    """
    if not changes:
        return state
    evolved = object.__new__(MessageState)
    fields = evolved.__dict__
    fields.update(state.__dict__)
    fields.update(changes)
    return evolved


def _key(command_id: str | None, wamid: str | None) -> str:
    return command_id if command_id else f"w:{wamid}"


def fact(event: Message) -> MessageState | None:
    """What one event says about one message, as a state; None when it says nothing."""
    if isinstance(event, SendTemplate):
        c = event.data
        return _state(
            key=c.command_id,
            command_id=c.command_id,
            waba_id=c.waba_id,
            phone_number_id=c.phone_number_id,
            recipient=c.to,
            provider=c.provider,
            campaign_id=c.campaign_id,
            template_name=c.template.name,
            template_language=c.template.language.code,
            tracking_token=c.labels.get(TRACKING_TOKEN_LABEL),
            requested_at=event.time,
            times=(("requested", event.time),),
            history=(Step(event.time, event.id, event.type, "requested"),),
        )
    if isinstance(
        event,
        SendAttempted | SendAccepted | SendFailed | SendSuppressed | SendIndeterminate,
    ):
        return _send_fact(event)
    if isinstance(event, SendRejected):
        r = event.data
        if r.command_id is None:
            return None
        return _state(
            key=r.command_id,
            command_id=r.command_id,
            outcome="rejected",
            outcome_detail=r.reason,
            times=(("rejected", event.time),),
            history=(Step(event.time, event.id, event.type, "rejected"),),
        )
    if isinstance(event, MessageStatus):
        return _status_fact(event)
    return None


def _send_fact(
    event: SendAttempted | SendAccepted | SendFailed | SendSuppressed | SendIndeterminate,
) -> MessageState:
    d = event.data
    fields: dict[str, Any] = {}
    if isinstance(event, SendAttempted):
        what = f"attempt {event.data.attempt}"
    elif isinstance(event, SendAccepted):
        what = "accepted"
        fields = {"outcome": what, "wamid": event.data.wamid}
    elif isinstance(event, SendFailed):
        what, err = "failed", event.data.error
        fields = {
            "outcome": what,
            "outcome_detail": f"{err.code}: {err.title}" if err.code else err.title,
            "error_code": err.code,
            "error_title": err.title,
            "error_from": (event.time, event.id),
        }
    elif isinstance(event, SendSuppressed):
        what = "suppressed"
        fields = {"outcome": what, "outcome_detail": event.data.rule}
    else:
        what = "indeterminate"
        fields = {"outcome": what, "outcome_detail": event.data.cause}
    return _state(
        key=d.command_id,
        command_id=d.command_id,
        waba_id=d.waba_id,
        phone_number_id=d.phone_number_id,
        recipient=d.to,
        provider=d.provider,
        campaign_id=d.campaign_id,
        template_name=d.template_name,
        template_language=d.template_language,
        endpoint=d.decision.endpoint,
        times=((what, event.time),) if "outcome" in fields else (),
        history=(Step(event.time, event.id, event.type, what),),
        **fields,
    )


def _status_fact(event: MessageStatus) -> MessageState:
    s = event.data
    command_id = command_id_from_callback(s.biz_opaque_callback_data)
    status = s.status
    pricing = pricing_from = None
    if s.pricing is not None:
        p = s.pricing
        pricing = Pricing(p.category, p.billable, p.type, p.pricing_model)
        pricing_from = (STATUS_RANK.get(status, 0), event.time, event.id)
    first_error = s.errors[0] if s.errors else None
    known = status in STATUS_RANK
    return _state(
        key=_key(command_id, s.wamid),
        command_id=command_id,
        wamid=s.wamid,
        waba_id=s.waba_id,
        phone_number_id=s.phone_number_id,
        recipient=s.recipient_id,
        status=status if known else None,
        times=((status, s.timestamp),) if known else (),
        pricing=pricing,
        pricing_from=pricing_from,
        error_code=first_error.code if first_error else None,
        error_title=first_error.title if first_error else None,
        error_from=(event.time, event.id) if first_error else None,
        history=(Step(event.time, event.id, event.type, status),),
    )


def evolve_message(state: MessageState | None, event: Message) -> MessageState | None:
    """The fold: what the message was, plus what this event says."""
    seen = fact(event)
    if seen is None:
        return state
    if state is None:
        return seen
    return merge(state, seen)


@dataclass(frozen=True)
class Filed:
    """Where one event's fact goes: the message's key, its new state, and the
    ``w:<wamid>`` entry (statuses that came before the send linked their wamid)
    merged into it, which is then gone."""

    key: str
    state: MessageState
    absorbed: str | None = None


def file_fact(
    seen: MessageState,
    event_id: str,
    message: Callable[[str], MessageState | None],
    linked: Callable[[str], str | None],
) -> Filed | None:
    """Decide where a fact belongs, reading the current messages (``message(key)``) and
    the wamid links (``linked(wamid)``) without changing them. None: nothing new
    (the same event again: ids are derived from content)."""
    key = seen.key
    if seen.command_id is None and seen.wamid:
        key = linked(seen.wamid) or key
    before = message(key)
    if before is not None:
        for step in before.history:
            if step.id == event_id:
                return None
    after = seen if before is None else merge(before, seen)
    if after.command_id and after.wamid:
        orphan_key = f"w:{after.wamid}"
        orphan = message(orphan_key) if orphan_key != key else None
        if orphan is not None:
            return Filed(key, merge(after, orphan), orphan_key)
    return Filed(key, after)


# --------------------------------------------------------------- aggregates
COUNTS = (
    "requested",
    "accepted",
    "sent",
    "delivered",
    "read",
    "failed",
    "suppressed",
    "rejected",
    "indeterminate",
    "fell_back",
)


@dataclass(frozen=True)
class AggregateKey:
    campaign_id: str
    template_name: str
    route: str
    day: str

    @property
    def text(self) -> str:
        return f"{self.campaign_id}|{self.template_name}|{self.route}|{self.day}"


@dataclass(frozen=True)
class Aggregate:
    campaign_id: str
    template_name: str
    route: str
    day: str
    counts: dict[str, int] = field(default_factory=dict)


def contribution(m: MessageState) -> tuple[AggregateKey, dict[str, int]] | None:
    """What one message adds to its campaign/template/route/day row (from its state alone)."""
    first = m.requested_at or min((when for _, when in m.times), default=None)
    if first is None:
        return None
    key = AggregateKey(
        campaign_id=m.campaign_id or "",
        template_name=m.template_name or "",
        route=m.endpoint or "not_sent",
        day=first.date().isoformat(),
    )
    reached = {name for name, _ in m.times}
    counts = {
        "requested": int(m.requested_at is not None),
        "accepted": int(m.outcome == "accepted"),
        "sent": int(bool(reached & {"sent", "delivered", "read"})),
        "delivered": int(bool(reached & {"delivered", "read"})),
        "read": int("read" in reached),
        "failed": int(m.state == "failed"),
        "suppressed": int(m.outcome == "suppressed"),
        "rejected": int(m.outcome == "rejected"),
        "indeterminate": int(m.outcome == "indeterminate" and m.status is None),
        "fell_back": int(m.fell_back),
    }
    if m.pricing is not None and m.pricing.billable:
        counts[f"billable.{m.pricing.category or 'unknown'}"] = 1
    return key, {name: n for name, n in counts.items() if n}


def add_counts(a: dict[str, int], b: dict[str, int], sign: int = 1) -> dict[str, int]:
    out = dict(a)
    for name, n in b.items():
        out[name] = out.get(name, 0) + sign * n
        if out[name] == 0:
            del out[name]
    return out


# ------------------------------------------------------------------- clicks
@dataclass(frozen=True)
class Click:
    """One click (keyed by its event id, so a duplicate webhook counts once)."""

    event_id: str
    tracking_token: str
    phone_number_id: str
    click_id: str | None
    click_component: str | None
    action_type: str
    time: datetime

    @property
    def day(self) -> str:
        return self.time.date().isoformat()


@dataclass(frozen=True)
class TokenState:
    """Which campaign a tracking token belongs to (from the commands' labels)."""

    tracking_token: str
    campaign_id: str


def click_of(event: Message) -> Click | None:
    if not isinstance(event, MarketingLinkClicked):
        return None
    d = event.data
    return Click(
        event_id=event.id,
        tracking_token=d.tracking_token or "",
        phone_number_id=d.phone_number_id,
        click_id=d.click_id,
        click_component=d.click_component,
        action_type=d.action_type,
        time=d.timestamp,
    )


def token_of(event: Message) -> TokenState | None:
    if isinstance(event, SendTemplate) and event.data.campaign_id:
        token = event.data.labels.get(TRACKING_TOKEN_LABEL)
        if token:
            return TokenState(tracking_token=token, campaign_id=event.data.campaign_id)
    return None


def evolve_token(state: TokenState | None, event: Message) -> TokenState | None:
    seen = token_of(event)
    if seen is None:
        return state
    if state is None or seen.campaign_id < state.campaign_id:
        return seen
    return state
