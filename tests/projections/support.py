"""Writing a campaign's events to the real broker, and running a projector on them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import Stream
from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings
from services.projections.projection import Projection, choose
from services.projections.projector import Projector
from services.projections.store import Store
from tests.projections import events as ev
from tests.sender.support import publish_events

STREAM_OF = {
    "send.template": Stream.SEND_COMMANDS,
    "message.status": Stream.MESSAGE_STATUS,
    "marketing.link_clicked": Stream.MARKETING_CLICKS,
    "account.updated": Stream.ACCOUNT,
    "account.onboarding_observed": Stream.ACCOUNT,
    "user.marketing_preference_changed": Stream.PREFERENCES,
    "template.status_changed": Stream.TEMPLATES,
    "template.category_changed": Stream.TEMPLATES,
}


def campaign(messages: int, *, first: int = 1) -> list[Message]:
    """A campaign's whole log: commands, results, statuses (with duplicates), clicks."""
    out: list[Message] = []
    for n in range(first, first + messages):
        out += [ev.command(n, labels={"tracking_token": "tok"}), ev.attempted(n)]
        if n % 10 == 0:
            out += [ev.failed(n)]
            continue
        out += [ev.accepted(n), ev.status(n, "sent", 3), ev.status(n, "delivered", 4)]
        out += [ev.status(n, "delivered", 4, copy=1)]
        if n % 3 == 0:
            out += [ev.status(None, "read", 5, wamid=f"wamid.{n}"), ev.click("tok", n)]
    out += [ev.terms_signed(ev.WABA, "1029384756473829", 0), ev.preference(ev.USER, "stop", 1)]
    out += [ev.template_status("spring_sale", "APPROVED", 0)]
    return out


async def publish_log(settings: CommonSettings, events: list[Message]) -> None:
    await ensure_project_topics(settings)
    by_stream: dict[Stream, list[Message]] = {}
    for event in events:
        by_stream.setdefault(STREAM_OF.get(event.type, Stream.SEND_EVENTS), []).append(event)
    for stream, batch in by_stream.items():
        await publish_events(settings, stream, batch)


def expected_state(events: list[Message]) -> Projection:
    projection = Projection(choose(None))
    for event in events:
        projection.apply(event)
    return projection


@asynccontextmanager
async def projector_running(
    settings: CommonSettings, store: Store | None, name: str = "live"
) -> AsyncIterator[Projector]:
    projector = Projector(settings, Projection(choose(None)), store, name=name)
    projector.load_state()
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield projector
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def caught_up(projector: Projector, read_at_least: int, timeout_s: float = 60) -> None:
    """Until the projector has read ``read_at_least`` records and reports no lag."""

    def done() -> bool:
        if projector.fatal is not None:
            raise projector.fatal
        landed = projector.store is None or projector.stored == projector.offsets
        return projector.read >= read_at_least and projector.lag() == 0 and landed

    async with asyncio.timeout(timeout_s), projector.progressed:
        await projector.progressed.wait_for(done)
