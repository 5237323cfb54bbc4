"""Clicks per campaign, a consumer another team could write with ``mmbus`` and FastStream alone.

Meta's click webhook names a ``tracking_token`` but no recipient and no
message, so a click is attributed through the command that declared the token
(the label ``tracking_token`` of a ``send.template``, with its ``campaign_id``).
Commands and clicks live on different streams and arrive in any order, so the
tally keeps clicks per token and joins tokens to campaigns when asked: the same
events in any order give the same counts. A redelivered click (at-least-once)
has the same event id and is counted once.

Run it against the broker of ``mmbus run``:

    python -m examples.click_counter      # MMBUS_* variables name the cluster
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from faststream import FastStream

from mmbus import KafkaConnection, Stream
from mmbus.consumer import EventConsumer
from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.webhook_events import MarketingLinkClicked

CLICK_LABEL = "tracking_token"
LINK_CLICK = "marketing_messages_link_click"


@dataclass(frozen=True)
class ClickTally:
    """Which campaign declared each token, and the ids of the clicks seen per token."""

    campaign_of_token: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    clicks_of_token: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def per_campaign(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for token, campaign in self.campaign_of_token.items():
            counts[campaign] = counts.get(campaign, 0) + len(self.clicks_of_token.get(token, ()))
        return counts

    def unattributed(self) -> int:
        """Clicks whose token no command has declared (yet)."""
        return sum(
            len(ids)
            for token, ids in self.clicks_of_token.items()
            if token not in self.campaign_of_token
        )


def evolve(tally: ClickTally, event: SendTemplate | MarketingLinkClicked) -> ClickTally:
    """The tally after one more event; pure, so it is tested by tables of cases."""
    if isinstance(event, SendTemplate):
        token, campaign = event.data.labels.get(CLICK_LABEL), event.data.campaign_id
        if token is None or campaign is None or token in tally.campaign_of_token:
            return tally
        return replace(
            tally, campaign_of_token=MappingProxyType({**tally.campaign_of_token, token: campaign})
        )
    token = event.data.tracking_token
    seen = tally.clicks_of_token.get(token or "", frozenset())
    # Logs written before user actions had their own event type hold other kinds as
    # link clicks too; only a link click is a click.
    if event.data.action_type != LINK_CLICK or token is None or event.id in seen:
        return tally
    return replace(
        tally,
        clicks_of_token=MappingProxyType({**tally.clicks_of_token, token: seen | {event.id}}),
    )


class ClickCounter:
    """The FastStream side: one subscriber on the command and click streams folds into a tally."""

    def __init__(self, connection: KafkaConnection, *, name: str = "example-click-counter") -> None:
        self.tally = ClickTally()
        self.events = EventConsumer(connection, name=name)
        self.events.subscriber(Stream.SEND_COMMANDS, Stream.MARKETING_CLICKS)(self.on_event)

    async def on_event(self, event: SendTemplate | MarketingLinkClicked) -> None:
        self.tally = evolve(self.tally, event)


async def main() -> None:
    counter = ClickCounter(KafkaConnection())
    app = FastStream(counter.events.broker)

    async def report() -> None:
        while True:
            await asyncio.sleep(5)
            print(counter.tally.per_campaign(), flush=True)

    reporter = asyncio.create_task(report())
    try:
        await app.run()
    finally:
        reporter.cancel()


if __name__ == "__main__":
    asyncio.run(main())
