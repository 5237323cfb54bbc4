"""The FastStream toolkit and the example consumer: the same cases in memory and on a real broker.

In memory, FastStream's ``TestKafkaBroker`` hands each published record to the
subscribers at once; on the real broker the records go through Kafka and a
consumer group, so the test waits until the tally has seen them all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker, TestKafkaBroker

from examples.click_counter import ClickCounter, ClickTally, evolve
from mmbus import KafkaConnection, Stream, encode
from mmbus.consumer import EventConsumer
from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import SendAccepted, SendAcceptedV1, SendAttempted
from mmbus.contracts.webhook_events import DeadLetterRecorded
from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings
from tests.projections import events as ev
from tests.waiting import eventually

Publish = Callable[[Stream, bytes, bytes | None, list[tuple[str, bytes]]], Awaitable[None]]

SPRING, AUTUMN = "spring-cta", "autumn-cta"
COMMANDS = [
    ev.command(1, campaign_id="spring", labels={"tracking_token": SPRING}),
    ev.command(2, campaign_id="spring", labels={"tracking_token": SPRING}),
    ev.command(3, campaign_id="autumn", labels={"tracking_token": AUTUMN}),
    ev.command(4, campaign_id="autumn"),  # declares no token: no clicks to attribute
]
CLICKS = [ev.click(SPRING, 1), ev.click(SPRING, 2), ev.click(AUTUMN, 3), ev.click("nobody", 4)]
NOT_A_CLICK = ev.click(SPRING, 5).model_copy(
    update={"data": ev.click(SPRING, 5).data.model_copy(update={"action_type": "catalog_view"})}
)


async def _publish_event(publish: Publish, stream: Stream, event: Message) -> None:
    record = encode(event)
    await publish(stream, record.value, record.key, record.headers)


@asynccontextmanager
async def _running(broker: KafkaBroker, mode: str, bootstrap: str) -> AsyncIterator[Publish]:
    """Start the broker in memory or for real; yield how to write a raw record to a stream."""
    if mode == "memory":
        async with TestKafkaBroker(broker) as memory:

            async def publish_memory(
                stream: Stream, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
            ) -> None:
                await memory.publish(
                    value, _topic(stream), key=key, headers={k: v.decode() for k, v in headers}
                )

            yield publish_memory
        return
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    await broker.start()
    try:

        async def publish_kafka(
            stream: Stream, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
        ) -> None:
            await producer.send_and_wait(_topic(stream), value=value, key=key, headers=headers)

        yield publish_kafka
    finally:
        await broker.stop()
        await producer.stop()


_PREFIX: list[str] = []


def _topic(stream: Stream) -> str:
    return f"{_PREFIX[-1]}{stream.value}"


@pytest.fixture(params=["memory", "kafka"])
def mode(request: pytest.FixtureRequest, topic_prefix: str) -> tuple[str, KafkaConnection, str]:
    """(mode, connection, bootstrap): the real broker only for the `kafka` case."""
    _PREFIX.append(topic_prefix)
    if request.param == "memory":
        return "memory", KafkaConnection(topic_prefix=topic_prefix), ""
    settings: CommonSettings = request.getfixturevalue("kafka_settings")
    connection = KafkaConnection(
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers, topic_prefix=topic_prefix
    )
    return "kafka", connection, settings.kafka_bootstrap_servers


async def _topics(kind: str, connection: KafkaConnection) -> None:
    if kind == "kafka":
        await ensure_project_topics(
            CommonSettings(
                kafka_bootstrap_servers=connection.kafka_bootstrap_servers,
                topic_prefix=connection.topic_prefix,
                partitions=3,
            )
        )


# ------------------------------------------------------------------ the pure fold
@pytest.mark.parametrize(
    ("events", "expected", "unattributed"),
    [
        ([], {}, 0),
        ([COMMANDS[0], CLICKS[0]], {"spring": 1}, 0),
        ([CLICKS[0], COMMANDS[0]], {"spring": 1}, 0),  # the click came first
        ([COMMANDS[0], CLICKS[0], CLICKS[0]], {"spring": 1}, 0),  # redelivered click
        ([COMMANDS[0], COMMANDS[1], CLICKS[0], CLICKS[1]], {"spring": 2}, 0),
        ([COMMANDS[3], CLICKS[2]], {}, 1),  # no command declared autumn-cta
        ([*COMMANDS, *CLICKS], {"spring": 2, "autumn": 1}, 1),
        ([COMMANDS[0], NOT_A_CLICK], {"spring": 0}, 0),  # an old log's other user action
    ],
)
def test_the_tally_is_a_fold_that_ignores_order_and_redelivery(
    events: list[Any], expected: dict[str, int], unattributed: int
) -> None:
    tally = ClickTally()
    for event in events:
        tally = evolve(tally, event)
    assert tally.per_campaign() == expected
    assert tally.unattributed() == unattributed


# ------------------------------------------------------------ the same case, twice
async def test_clicks_are_counted_per_campaign_and_bad_records_are_dead_lettered(
    mode: tuple[str, KafkaConnection, str],
) -> None:
    kind, connection, bootstrap = mode
    await _topics(kind, connection)
    counter = ClickCounter(connection, name=f"{connection.topic_prefix}clicks")
    dead: list[DeadLetterRecorded] = []

    @EventConsumer(connection, name="dead-letter-reader", broker=counter.events.broker).subscriber(
        Stream.DEAD_LETTERS
    )
    async def on_dead_letter(event: DeadLetterRecorded) -> None:
        dead.append(event)

    async with _running(counter.events.broker, kind, bootstrap) as publish:
        await _publish_event(publish, Stream.MARKETING_CLICKS, CLICKS[0])  # before its command
        for command in COMMANDS:
            await _publish_event(publish, Stream.SEND_COMMANDS, command)
        await publish(Stream.MARKETING_CLICKS, b"{not json", b"k", [])
        for click in [*CLICKS, CLICKS[1]]:  # CLICKS[0] and CLICKS[1] arrive twice
            await _publish_event(publish, Stream.MARKETING_CLICKS, click)
        await eventually(
            lambda: (
                counter.tally.per_campaign() == {"spring": 2, "autumn": 1}
                and counter.tally.unattributed() == 1
                and len(dead) == 1
            )
        )
    assert dead[0].data.reason == "invalid_json"
    assert dead[0].data.source_topic == connection.topic(Stream.MARKETING_CLICKS)
    assert dead[0].data.value_b64 is not None
    assert dead[0].data.consumer == f"{connection.topic_prefix}clicks"


def _accepted_v1(n: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A send.accepted as version 1 wrote it (no message_status): the log is never rewritten."""
    record = encode(ev.accepted(n))
    envelope = orjson.loads(record.value)
    envelope["version"] = 1
    v1_fields = SendAcceptedV1.model_fields["data"].annotation.model_fields  # type: ignore[union-attr]
    envelope["data"] = {k: v for k, v in envelope["data"].items() if k in v1_fields}
    headers = [(k, b"1" if k == "ce_schemaversion" else v) for k, v in record.headers]
    return orjson.dumps(envelope), headers


async def test_a_subscriber_gets_only_its_types_in_their_newest_version(
    mode: tuple[str, KafkaConnection, str],
) -> None:
    kind, connection, bootstrap = mode
    await _topics(kind, connection)
    events = EventConsumer(connection, name=f"{connection.topic_prefix}accepted")
    seen: list[SendAccepted] = []

    @events.subscriber(Stream.SEND_EVENTS)
    async def on_accepted(event: SendAccepted) -> None:
        seen.append(event)

    async with _running(events.broker, kind, bootstrap) as publish:
        await _publish_event(publish, Stream.SEND_EVENTS, ev.attempted(1))  # not wanted
        value, headers = _accepted_v1(1)
        await publish(Stream.SEND_EVENTS, value, b"k", headers)
        await _publish_event(publish, Stream.SEND_EVENTS, ev.accepted(2))
        await eventually(lambda: len(seen) == 2)
    assert [type(e) for e in seen] == [SendAccepted, SendAccepted]
    assert [e.version for e in seen] == [2, 2]
    assert seen[0].data.message_status is None  # upcast: v1 did not know it
    assert not any(isinstance(e, SendAttempted) for e in seen)


# --------------------------------------------------------- real broker only
async def test_a_failing_handler_gets_the_record_again_and_a_restart_resumes_after_commits(
    kafka_settings: CommonSettings,
) -> None:
    await ensure_project_topics(kafka_settings)
    connection = KafkaConnection(
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix,
    )
    _PREFIX.append(kafka_settings.topic_prefix)
    group = f"{kafka_settings.topic_prefix}flaky"
    attempts: list[str] = []

    events = EventConsumer(connection, name=group)

    @events.subscriber(Stream.SEND_EVENTS)
    async def flaky(event: SendAccepted) -> None:
        attempts.append(event.data.command_id)
        if attempts.count(event.data.command_id) == 1 and event.data.command_id == ev.cid(1):
            raise RuntimeError("the handler's database was away")

    async with _running(events.broker, "kafka", kafka_settings.kafka_bootstrap_servers) as pub:
        for n in (1, 2):
            await _publish_event(pub, Stream.SEND_EVENTS, ev.accepted(n))
        await eventually(lambda: ev.cid(2) in attempts)
    # Delivered again after the failure, and in order: nothing after it was committed first.
    assert attempts == [ev.cid(1), ev.cid(1), ev.cid(2)]

    later = EventConsumer(connection, name=group)
    resumed: list[str] = []

    @later.subscriber(Stream.SEND_EVENTS)
    async def again(event: SendAccepted) -> None:
        resumed.append(event.data.command_id)

    async with _running(later.broker, "kafka", kafka_settings.kafka_bootstrap_servers) as pub:
        await _publish_event(pub, Stream.SEND_EVENTS, ev.accepted(3))
        await eventually(lambda: bool(resumed))
    assert resumed == [ev.cid(3)]  # what was handled before was committed


def test_a_handler_must_name_newest_event_models() -> None:
    events = EventConsumer(KafkaConnection(), name="x")

    async def untyped(event: dict[str, Any]) -> None: ...

    with pytest.raises(TypeError, match="annotate its first parameter"):
        events.subscriber(Stream.SEND_EVENTS)(untyped)
