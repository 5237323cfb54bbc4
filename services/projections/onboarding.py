"""Onboarding: which WABAs (and numbers) may use the Marketing Messages API, since when, why.

Per WABA the state is the sender's own fold (:func:`evolve_waba`). On top of it:

- a **portfolio** (business) whose WABA signed the MM API terms covers every WABA
  of that business, including WABAs first seen later: the signature is
  portfolio-wide;
- **numbers** inherit their WABA's state, including numbers first seen later.

The effective view (:func:`onboarding_view`) is computed at read time from
those three folds, so the order in which they were fed does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import SendAccepted, SendAttempted
from mmbus.contracts.webhook_events import AccountUpdated, MessageStatus
from mmbus.folds import ONBOARDING_EVENTS, WabaState

# Meta's finer values mapped onto the three states a person asks about.
COARSE = {
    "ONBOARDED": "onboarded",
    "ELIGIBLE": "eligible",
    "PENDING": "eligible",
    "IN_PROGRESS": "eligible",
    "NOT_ELIGIBLE": "not_eligible",
    "INELIGIBLE": "not_eligible",
}


@dataclass(frozen=True)
class PortfolioState:
    business_id: str
    terms_signed_at: datetime | None = None
    because: str | None = None  # the event id of the first signature
    signed_via_waba: str | None = None


@dataclass(frozen=True)
class NumberState:
    phone_number_id: str
    waba_id: str
    first_seen: datetime
    because: str


@dataclass(frozen=True)
class OnboardingView:
    waba_id: str
    status: str  # onboarded, eligible, not_eligible, unknown
    meta_status: str | None  # Meta's own value when one was seen
    since: datetime | None
    because: str | None
    via: str  # "waba", "portfolio" or "none"
    business_id: str | None


def portfolio_of(event: Message) -> str | None:
    if isinstance(event, AccountUpdated):
        info = event.data.waba_info
        return event.data.owner_business_id or (info.owner_business_id if info else None)
    return None


def evolve_portfolio(state: PortfolioState | None, event: Message) -> PortfolioState | None:
    """The first terms signature of any of the business's WABAs (by event time, then id)."""
    business = portfolio_of(event)
    if not isinstance(event, AccountUpdated) or business is None:
        return state
    current = state or PortfolioState(business_id=business)
    if event.data.event not in ONBOARDING_EVENTS:
        return current
    if current.terms_signed_at is not None and (current.terms_signed_at, current.because or "") <= (
        event.time,
        event.id,
    ):
        return current
    return replace(
        current, terms_signed_at=event.time, because=event.id, signed_via_waba=event.data.waba_id
    )


# A tuple, not a union: isinstance is several times faster with it, once per event.
# Statuses first: the most frequent, and a miss against a pydantic model class costs a
# call of its metaclass's __instancecheck__.
_NUMBERED = (MessageStatus, SendAttempted, SendAccepted)


def number_of(event: Message) -> tuple[str, str] | None:
    """(phone number id, WABA id) when the event ties a number to its WABA."""
    if isinstance(event, _NUMBERED):
        return event.data.phone_number_id, event.data.waba_id
    return None


def evolve_number(state: NumberState | None, event: Message) -> NumberState | None:
    seen = number_of(event)
    if seen is None:
        return state
    if state is not None and (state.first_seen, state.because) <= (event.time, event.id):
        return state
    return NumberState(
        phone_number_id=seen[0], waba_id=seen[1], first_seen=event.time, because=event.id
    )


def join_portfolios(a: PortfolioState | None, b: PortfolioState | None) -> PortfolioState | None:
    """The first signature of either side (by time, then event id), as the fold keeps it."""
    if a is None or b is None or a == b:
        return a if b is None else b
    if a.terms_signed_at is None or b.terms_signed_at is None:
        return a if b.terms_signed_at is None else b
    return min(a, b, key=lambda s: (s.terms_signed_at, s.because or "", s.signed_via_waba or ""))


def join_numbers(a: NumberState | None, b: NumberState | None) -> NumberState | None:
    """The earlier sighting (by time, then event id), as the fold keeps it."""
    if a is None or b is None or a == b:
        return a if b is None else b
    return min(a, b, key=lambda s: (s.first_seen, s.because, s.waba_id))


def onboarding_view(
    waba_id: str, waba: WabaState | None, portfolio: PortfolioState | None
) -> OnboardingView:
    business = waba.owner_business_id if waba else None
    own = waba.onboarding_status if waba else None
    if own == "ONBOARDED" and waba is not None:
        return OnboardingView(waba_id, "onboarded", own, waba.since, waba.because, "waba", business)
    if portfolio is not None and portfolio.terms_signed_at is not None:
        return OnboardingView(
            waba_id,
            "onboarded",
            own,
            portfolio.terms_signed_at,
            portfolio.because,
            "portfolio",
            portfolio.business_id,
        )
    if own is not None and waba is not None:
        coarse = COARSE.get(own.upper(), "not_eligible")
        return OnboardingView(waba_id, coarse, own, waba.since, waba.because, "waba", business)
    return OnboardingView(waba_id, "unknown", None, None, None, "none", business)
