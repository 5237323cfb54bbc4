"""What the log says about WABAs, templates and recipients, folded per entity.

Each ``evolve_*`` is a pure fold ``(state | None, event) -> state`` over one
entity (a WABA, a template, a recipient); the adapter keeps one state per key.
Projections use the same folds, so the sender and the audit agree.

Events for one entity can arrive on different streams (a preference change on
the preference stream, a 131050 failure on the status stream), so a consumer
may see them in any interleaving. Where that can happen the fold keeps the
fact with the latest event time (ties broken by event id): the same events in
any order give the same state, which replay digests rely on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import SendAccepted
from mmbus.contracts.webhook_events import (
    AccountOnboardingObserved,
    AccountUpdated,
    MessageStatus,
    TemplateCategoryChanged,
    TemplateCategoryObserved,
    TemplateStatusChanged,
    UserMarketingPreferenceChanged,
)

ONBOARDING_EVENTS = frozenset({"MM_LITE_TERMS_SIGNED", "ONBOARDING_COMPLETED", "MM_LITE_ONBOARDED"})


@dataclass(frozen=True)
class WabaState:
    waba_id: str
    onboarding_status: str | None = None  # ONBOARDED, ELIGIBLE, NOT_ELIGIBLE, ...
    disable_marketing_on_cloud_api: bool | None = None
    owner_business_id: str | None = None
    since: datetime | None = None
    because: str | None = None  # the event id that set the status

    @property
    def onboarded(self) -> bool | None:
        return None if self.onboarding_status is None else self.onboarding_status == "ONBOARDED"


@dataclass(frozen=True)
class TemplateState:
    waba_id: str
    name: str
    category: str | None = None
    status: str | None = None
    approved_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class RecipientState:
    user_id: str
    stopped_marketing: bool = False
    since: datetime | None = None
    because: str | None = None


def evolve_waba(state: WabaState | None, event: Message) -> WabaState | None:
    if isinstance(event, AccountUpdated):
        d = event.data
        current = state or WabaState(waba_id=d.waba_id)
        owner = d.owner_business_id or (d.waba_info.owner_business_id if d.waba_info else None)
        if owner and owner != current.owner_business_id:
            current = replace(current, owner_business_id=owner)
        if d.event in ONBOARDING_EVENTS:
            return replace(
                current,
                onboarding_status="ONBOARDED",
                since=event.time,
                because=event.id,
            )
        return current
    if isinstance(event, AccountOnboardingObserved):
        seen = event.data
        current = state or WabaState(waba_id=seen.waba_id)
        # A ToS-signed webhook outranks an older lookup: onboarding is not undone.
        status = seen.marketing_messages_onboarding_status
        if current.onboarding_status == "ONBOARDED" and status != "ONBOARDED":
            status = current.onboarding_status
        return replace(
            current,
            onboarding_status=status,
            disable_marketing_on_cloud_api=seen.disable_marketing_messages_on_cloud_api,
            since=current.since if status == current.onboarding_status else event.time,
            because=current.because if status == current.onboarding_status else event.id,
        )
    return state


def evolve_template(state: TemplateState | None, event: Message) -> TemplateState | None:
    if isinstance(event, SendAccepted):
        sent = event.data
        if sent.template_name is None:
            return state
        current = state or TemplateState(waba_id=sent.waba_id, name=sent.template_name)
        if current.last_used_at is not None and current.last_used_at >= event.time:
            return current
        return replace(current, last_used_at=event.time)
    if isinstance(event, TemplateStatusChanged):
        d = event.data
        current = state or TemplateState(waba_id=d.waba_id, name=d.name or "")
        approved = event.time if d.event == "APPROVED" else current.approved_at
        return replace(current, status=d.event, approved_at=approved)
    if isinstance(event, TemplateCategoryChanged):
        change = event.data
        current = state or TemplateState(waba_id=change.waba_id, name=change.name or "")
        return replace(current, category=change.new_category)
    if isinstance(event, TemplateCategoryObserved):
        # Same stream and key as the webhooks: the log's order is the order of the facts.
        seen = event.data
        current = state or TemplateState(waba_id=seen.waba_id, name=seen.name)
        return replace(current, category=seen.category)
    return state


def _newer(state: RecipientState | None, event: Message) -> bool:
    if state is None or state.since is None:
        return True
    return (event.time, event.id) > (state.since, state.because or "")


def evolve_recipient(
    state: RecipientState | None, event: Message, key: str | None = None
) -> RecipientState | None:
    """The user's state after ``event``; ``key`` names the user (a wa_id or a BSUID, see
    :func:`recipient_keys`), by default the event's first key."""
    user = key or next(iter(recipient_keys(event)), None)
    if user is None:
        return state
    # Statuses first: every one asks, and a miss against a pydantic model class costs
    # a call of its metaclass's __instancecheck__.
    if isinstance(event, MessageStatus):
        st = event.data
        if (
            st.status == "failed"
            and any(e.code == 131050 for e in st.errors)
            and _newer(state, event)
        ):
            return RecipientState(
                user_id=user, stopped_marketing=True, since=event.time, because=event.id
            )
        return state
    if isinstance(event, UserMarketingPreferenceChanged):
        d = event.data
        stop = d.preference.lower() == "stop"
        if d.preference.lower() not in {"stop", "resume"} or not _newer(state, event):
            return state
        return RecipientState(
            user_id=user, stopped_marketing=stop, since=event.time, because=event.id
        )
    return state


def recipient_keys(event: Message) -> tuple[str, ...]:
    """Every id the event names its user by: the wa_id (phone number) first, then the
    business-scoped user id (BSUID) when the webhook carried one. A user known only by
    BSUID is keyed by it; one known by both is kept under both, so a send addressed to
    the phone number and a lookup by BSUID find the same stop."""
    if isinstance(event, MessageStatus):  # the usual case first: every status asks
        first, second = event.data.recipient_id, event.data.recipient_user_id
    elif isinstance(event, UserMarketingPreferenceChanged):
        first, second = event.data.user_id, event.data.user_bsuid
    else:
        return ()
    # Spelt out, not dict.fromkeys over a generator: once per status, on a replay's hot path.
    if not second or second == first:
        return (first,) if first else ()
    return (first, second) if first else (second,)


def template_key(waba_id: str, name: str) -> str:
    return f"{waba_id}:{name}"


# ------------------------------------------------------------------- joins
# A replay may fold the log's partitions in separate workers and join their
# partial states. Each join combines what two states fold from disjoint parts
# of the log, so join(fold(A), fold(B)) == fold(A + B); each is commutative,
# associative and idempotent.
#
# The WABA fold and a template's status and category follow the log's order.
# Their events share one key and so one partition, which a replay gives to one
# worker: only one side knows them. Were a key spread over partitions (a topic
# repartitioned), even a single consumer's result would depend on how it
# interleaved them; the join then keeps the larger value, deterministically.


def _order(state: object) -> tuple[tuple[bool, object], ...]:
    return tuple((v is not None, v if v is not None else 0) for v in vars(state).values())


def join_waba(a: WabaState | None, b: WabaState | None) -> WabaState | None:
    if a is None or b is None or a == b:
        return a if b is None else b
    return max(a, b, key=_order)


def join_template(a: TemplateState | None, b: TemplateState | None) -> TemplateState | None:
    """Last use is the latest of both; status, category and approval come from the side
    that saw the template's own events."""
    if a is None or b is None or a == b:
        return a if b is None else b
    own_a = (a.category, a.status, a.approved_at)
    own_b = (b.category, b.status, b.approved_at)
    if own_b == (None, None, None) or own_a == own_b:
        own = a
    elif own_a == (None, None, None):
        own = b
    else:
        own = max(a, b, key=_order)
    used = [t for t in (a.last_used_at, b.last_used_at) if t is not None]
    return replace(own, last_used_at=max(used) if used else None)


def join_recipient(a: RecipientState | None, b: RecipientState | None) -> RecipientState | None:
    """The newer fact wins, as in :func:`evolve_recipient`."""
    if a is None or b is None or a == b:
        return a if b is None else b
    return max(a, b, key=lambda s: (s.since is not None, s.since or 0, s.because or "", _order(s)))
