"""Delivery: what became of each message, from the command to the last status webhook.

A message is known by its command id (the sender's events, and status webhooks
that echo ``mmbus:<command_id>`` in ``biz_opaque_callback_data``) and by its
wamid (``send.accepted`` and every status). A status that names only a wamid
nobody has linked yet is kept under ``w:<wamid>`` and merged into the command's
message once ``send.accepted`` links the two.

Every event becomes a one-event :class:`MessageState` (:func:`fact`), merged
into the message with :func:`merge` (:mod:`services.projections.message`),
whose rules make order irrelevant: statuses arrive on another stream than the
send events, late and duplicated, and the same events in any interleaving give
the same state, so a replay's digest equals the live one.
"""

from __future__ import annotations

from collections.abc import Callable
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
from mmbus.contracts.webhook_events import MessageStatus
from services.projections.aggregates import (
    COUNTS,
    Aggregate,
    AggregateKey,
    add_counts,
    contribution,
)
from services.projections.clicks import (
    TRACKING_TOKEN_LABEL,
    Click,
    TokenState,
    click_of,
    evolve_token,
    token_of,
)
from services.projections.message import (
    OUTCOME_RANK,
    STATUS_RANK,
    MessageState,
    Pricing,
    Step,
    absorb,
    merge,
    state_with,
    step_of,
)

# What the query API and the projection adapter import from here; the state,
# the aggregates and the clicks live in their own modules.
__all__ = [
    "COUNTS",
    "OUTCOME_RANK",
    "STATUS_RANK",
    "TRACKING_TOKEN_LABEL",
    "Aggregate",
    "AggregateKey",
    "Click",
    "Filed",
    "MessageState",
    "Pricing",
    "Step",
    "TokenState",
    "add_counts",
    "click_of",
    "contribution",
    "evolve_message",
    "evolve_token",
    "fact",
    "file_fact",
    "known_of",
    "merge",
    "token_of",
]


def _key(command_id: str | None, wamid: str | None) -> str:
    return command_id if command_id else f"w:{wamid}"


def fact(event: Message) -> MessageState | None:
    """What one event says about one message, as a state; None when it says nothing."""
    known = known_of(event)
    return state_with(**known) if known is not None else None


Known = dict[str, Any]


def known_of(event: Message) -> Known | None:
    """The fields of :func:`fact`'s state that the event sets (the fold's cheaper form:
    a state is built once, when the fact is merged)."""
    build = _FACTS.get(type(event))
    return build(event) if build is not None else None


def _command_fact(event: SendTemplate) -> Known:
    c = event.data
    return {
        "key": c.command_id,
        "command_id": c.command_id,
        "waba_id": c.waba_id,
        "phone_number_id": c.phone_number_id,
        "recipient": c.to,
        "provider": c.provider,
        "campaign_id": c.campaign_id,
        "template_name": c.template.name,
        "template_language": c.template.language.code,
        "tracking_token": c.labels.get(TRACKING_TOKEN_LABEL),
        "requested_at": event.time,
        "times": (("requested", event.time),),
        "history": (step_of((event.time, event.id, event.type, "requested")),),
    }


def _rejected_fact(event: SendRejected) -> Known | None:
    r = event.data
    if r.command_id is None:
        return None
    return {
        "key": r.command_id,
        "command_id": r.command_id,
        "outcome": "rejected",
        "outcome_detail": r.reason,
        "times": (("rejected", event.time),),
        "history": (step_of((event.time, event.id, event.type, "rejected")),),
    }


def _send_fact(
    event: SendAttempted | SendAccepted | SendFailed | SendSuppressed | SendIndeterminate,
) -> Known:
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
    return dict(
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
        history=(step_of((event.time, event.id, event.type, what)),),
        **fields,
    )


def _status_fact(event: MessageStatus) -> Known:
    s = event.data
    command_id = command_id_from_callback(s.biz_opaque_callback_data)
    status = s.status
    pricing = pricing_from = None
    if s.pricing is not None:
        p = s.pricing
        pricing = _pricing(p.category, p.billable, p.type, p.pricing_model)
        pricing_from = (STATUS_RANK.get(status, 0), event.time, event.id)
    first_error = s.errors[0] if s.errors else None
    known = status in STATUS_RANK
    return {
        "key": _key(command_id, s.wamid),
        "command_id": command_id,
        "wamid": s.wamid,
        "waba_id": s.waba_id,
        "phone_number_id": s.phone_number_id,
        "recipient": s.recipient_id or s.recipient_user_id,  # a message sent to a BSUID
        "status": status if known else None,
        "times": ((status, s.timestamp),) if known else (),
        "pricing": pricing,
        "pricing_from": pricing_from,
        "error_code": first_error.code if first_error else None,
        "error_title": first_error.title if first_error else None,
        "error_from": (event.time, event.id) if first_error else None,
        "history": (step_of((event.time, event.id, event.type, status)),),
    }


_PRICINGS: dict[tuple[str | None, bool | None, str | None, str | None], Pricing] = {}


def _pricing(
    category: str | None, billable: bool | None, kind: str | None, model: str | None
) -> Pricing:
    """Prices repeat (a handful of categories and models): one shared, immutable value each."""
    key = (category, billable, kind, model)
    found = _PRICINGS.get(key)
    if found is None:
        found = Pricing(category, billable, kind, model)
        if len(_PRICINGS) < 1024:  # odd values are not kept
            _PRICINGS[key] = found
    return found


# The event types that say something about a message, and how (a dict, not an
# isinstance chain: the fold runs once per event).
_FACTS: dict[type[Any], Callable[[Any], Known | None]] = {
    SendTemplate: _command_fact,
    SendAttempted: _send_fact,
    SendAccepted: _send_fact,
    SendFailed: _send_fact,
    SendSuppressed: _send_fact,
    SendIndeterminate: _send_fact,
    SendRejected: _rejected_fact,
    MessageStatus: _status_fact,
}


def evolve_message(state: MessageState | None, event: Message) -> MessageState | None:
    """The fold: what the message was, plus what this event says."""
    seen = fact(event)
    if seen is None:
        return state
    if state is None:
        return seen
    return merge(state, seen)


class Filed(NamedTuple):
    """Where one event's fact goes: the message's key, its new state, and the
    ``w:<wamid>`` entry (statuses that came before the send linked their wamid)
    merged into it, which is then gone."""

    key: str
    state: MessageState
    absorbed: str | None = None


def file_fact(
    seen: MessageState | Known,
    event_id: str,
    message: Callable[[str], MessageState | None],
    linked: Callable[[str], str | None],
) -> Filed | None:
    """Decide where a fact belongs, reading the current messages (``message(key)``) and
    the wamid links (``linked(wamid)``) without changing them. None: nothing new
    (the same event again: ids are derived from content). ``seen`` is a fact's
    state or only its known fields (:func:`known_of`)."""
    known = seen.__dict__ if isinstance(seen, MessageState) else seen
    key = known["key"]
    wamid = known.get("wamid")
    if known.get("command_id") is None and wamid:
        key = linked(wamid) or key
    before = message(key)
    if before is None:
        after = seen if isinstance(seen, MessageState) else state_with(**seen)
    else:
        for step in before.history:
            if step.id == event_id:
                return None
        after = absorb(before, known)
    if after.command_id and after.wamid:
        orphan_key = f"w:{after.wamid}"
        orphan = message(orphan_key) if orphan_key != key else None
        if orphan is not None:
            return Filed(key, merge(after, orphan), orphan_key)
    return Filed(key, after)
