"""Clicks: one per click webhook, counted per tracking token and day, tied to campaigns by token.

Meta's click webhook carries a tracking token but no message id; a command
declares the token it expects in its labels, which ties the token to a
campaign (:class:`TokenState`). The per-day counts are a function of the
clicks alone, so a replay can compute them once from the joined clicks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import Message
from mmbus.contracts.webhook_events import MarketingLinkClicked

TRACKING_TOKEN_LABEL = "tracking_token"  # noqa: S105 - a label name, not a secret


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
class ClickCount:
    tracking_token: str
    day: str
    clicks: int


@dataclass(frozen=True)
class TokenState:
    """Which campaign a tracking token belongs to (from the commands' labels)."""

    tracking_token: str
    campaign_id: str


LINK_CLICK = "marketing_messages_link_click"


def click_of(event: Message) -> Click | None:
    """The click an event records, if it is one. Logs written before other user actions
    had their own event type hold them as ``marketing.link_clicked`` too: only a link
    click counts."""
    if not isinstance(event, MarketingLinkClicked) or event.data.action_type != LINK_CLICK:
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


def count_key(click: Click) -> str:
    return f"{click.tracking_token}|{click.day}"


def count_all(clicks: Iterable[Click]) -> dict[str, ClickCount]:
    """Every per-token, per-day count, from the clicks: what the live increments add up to."""
    # Summed per (token, date) first: one ClickCount per row, not one per click.
    per_day: dict[tuple[str, date], int] = {}
    for click in clicks:
        at = (click.tracking_token, click.time.date())
        per_day[at] = per_day.get(at, 0) + 1
    counts: dict[str, ClickCount] = {}
    for (token, day), n in per_day.items():
        text = day.isoformat()
        counts[f"{token}|{text}"] = ClickCount(token, text, n)
    return counts


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
    return join_tokens(state, seen)


def join_tokens(a: TokenState | None, b: TokenState | None) -> TokenState | None:
    """A token claimed by several campaigns belongs to the smallest id (any order, same answer)."""
    if a is None or b is None:
        return a if b is None else b
    return b if b.campaign_id < a.campaign_id else a
