"""The replay benchmark's log: a campaign sent from several numbers of several WABAs.

Send commands and the sender's events are keyed by phone number id, statuses by
wamid, clicks by phone number id. A business sending a campaign at volume sends
it from several numbers (throughput is per number), often of several WABAs, so
its commands spread over the partitions; a log with one number would put every
command and send event in one partition, which no worker can share. Here the
messages go round-robin over ``NUMBERS`` numbers of ``WABAS`` WABAs.
"""

from __future__ import annotations

from collections import Counter

from aiokafka import AIOKafkaProducer

from mmbus.contracts.codec import encode
from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import topic_name
from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings
from tests.projections import events as ev
from tests.projections.support import STREAM_OF

WABAS = 4
NUMBERS = 16  # four per WABA
BUSINESS = "1029384756473829"


def sender(n: int) -> tuple[str, str]:
    """(WABA id, phone number id) message ``n`` is sent from."""
    number = n % NUMBERS
    return f"10229012934{number % WABAS:04d}", f"10654035224{number:04d}"


def campaign(messages: int, *, first: int = 1) -> list[Message]:
    """Commands, results, statuses (with duplicates and wamid-only reads), clicks."""
    out: list[Message] = []
    for n in range(first, first + messages):
        waba, number = sender(n)
        tok = {"tracking_token": "tok"}
        out += [ev.command(n, labels=tok, waba=waba, number=number)]
        out += [ev.attempted(n, waba=waba, number=number)]
        if n % 10 == 0:
            out += [ev.failed(n, waba=waba, number=number)]
            continue
        out += [ev.accepted(n, waba=waba, number=number)]
        for value, when, copy in (("sent", 3, 0), ("delivered", 4, 0), ("delivered", 4, 1)):
            out += [ev.status(n, value, when, copy=copy, waba=waba, number=number)]
        if n % 3 == 0:
            wamid = f"wamid.{n}"
            out += [ev.status(None, "read", 5, wamid=wamid, waba=waba, number=number)]
            out += [ev.click("tok", n, waba=waba, number=number)]
    return out


def account_events() -> list[Message]:
    """Each WABA's terms signature and template approval; one opt-out."""
    wabas = sorted({sender(n)[0] for n in range(NUMBERS)})
    out: list[Message] = [ev.terms_signed(waba, BUSINESS, 0) for waba in wabas]
    out += [ev.template_status("spring_sale", "APPROVED", 0, waba=waba) for waba in wabas]
    out.append(ev.preference(ev.USER, "stop", 1))
    return out


async def write_log(settings: CommonSettings, messages: int) -> tuple[int, Counter[str]]:
    """Events written, and records per topic partition (``topic[p]``)."""
    await ensure_project_topics(settings)
    producer = AIOKafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        **settings.kafka_client_options(),
    )
    await producer.start()
    written = 0
    where: Counter[str] = Counter()
    try:
        for start in range(1, messages + 1, 2000):
            events = campaign(min(2000, messages + 1 - start), first=start)
            if start == 1:
                events += account_events()
            futures = []
            for event in events:
                stream = STREAM_OF.get(event.type)
                topic = topic_name(stream, settings.topic_prefix) if stream else None
                topic = topic or f"{settings.topic_prefix}send.events"
                record = encode(event)
                futures.append(
                    await producer.send(
                        topic, value=record.value, key=record.key, headers=record.headers
                    )
                )
            for future in futures:
                meta = await future
                where[f"{meta.topic.removeprefix(settings.topic_prefix)}[{meta.partition}]"] += 1
            written += len(events)
    finally:
        await producer.stop()
    return written, where


def spread(where: Counter[str]) -> str:
    """Per topic: records in its busiest partition / its partitions used."""
    topics: dict[str, list[int]] = {}
    for name, n in where.items():
        topics.setdefault(name.split("[")[0], []).append(n)
    return ", ".join(
        f"{topic} {sum(ns):,} over {len(ns)} (largest {max(ns):,})"
        for topic, ns in sorted(topics.items())
    )
