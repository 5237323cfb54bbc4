"""A send's status and click webhooks, through ingest and the normalizer, link to its trace.

One command is published with the helper and sent by the sender to the simulator;
the simulator's webhooks for that message (as Meta signs them) are collected and
then posted to ingest (real HTTP, real broker), so the send's events are on
Kafka before the webhooks arrive, as with Meta, and the outcome is deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from mmbus.contracts.topics import Stream, topic_name
from services.common.ports import free_port
from services.common.serving import ServeInThread
from services.common.settings import CommonSettings
from services.ingest.main import run_ingest
from services.ingest.settings import IngestSettings
from services.simulator.server import SimulatorThread
from services.simulator.settings import SimulatorSettings
from services.simulator.world import World
from tests.observability.tracing_support import recording
from tests.sender.support import command, publish, read_stream, running_sender, sender_settings
from tests.simulator.support import NUMBER, WebhookSink, make_world
from tests.waiting import eventually

SECRET = "tracing-app-secret"
TOKEN = "spring-sale-cta"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recording() as exporter:
        yield exporter


def _world() -> World:
    """The test world, its spring_sale clicks carrying TOKEN (as the demo's world does)."""
    world = make_world(pair_limit_s=0.0)
    templates = tuple(
        t.model_copy(update={"tracking_token": TOKEN}) if t.id == "9001" else t
        for t in world.templates
    )
    return world.model_copy(update={"templates": templates})


async def _every_webhook_once(simulator: str) -> None:
    """Sent, delivered, read and a click, no duplicates: one of each to check."""
    async with httpx.AsyncClient(base_url=simulator, timeout=10) as api:
        behaviour = (await api.get("/_admin/behaviour")).json()
        certain = ("delivered_probability", "read_probability", "click_probability")
        never = ("duplicate_probability", "out_of_order_probability", "user_action_probability")
        changed = {**behaviour, **dict.fromkeys(certain, 1.0), **dict.fromkeys(never, 0.0)}
        assert (await api.put("/_admin/behaviour", json=changed)).status_code == 200


@asynccontextmanager
async def running_ingest(kafka: CommonSettings) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    settings = IngestSettings.model_validate(
        {
            **kafka.model_dump(),
            "ingest_app_secrets": [SecretStr(SECRET)],
            "ingest_port": port,
            "normalizer_group_id": f"{kafka.topic_prefix}normalizer",
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_ingest(settings, stop))
    try:
        # Connect retries (with httpcore's backoff) until the receiver listens.
        retrying = httpx.AsyncHTTPTransport(retries=10)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=10, transport=retrying
        ) as client:
            assert (await client.get("/health")).status_code == 200
            yield client
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def _only(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    (found,) = _named(spans, name)
    return found


async def test_status_and_click_spans_link_to_the_trace_of_their_send(
    kafka_settings: CommonSettings, spans: InMemorySpanExporter
) -> None:
    sink = WebhookSink()
    sent = command(
        NUMBER, "447911123401", message_activity_sharing=True, labels={"tracking_token": TOKEN}
    )
    with ServeInThread(sink.app()) as hooks:
        sim_settings = SimulatorSettings(
            webhook_url=f"{hooks.base_url}/webhooks", app_secret=SecretStr(SECRET)
        )
        with SimulatorThread(sim_settings, _world()) as sim:
            await _every_webhook_once(sim.base_url)
            await publish(kafka_settings, [sent])
            async with running_sender(sender_settings(kafka_settings, sim.base_url)):
                await read_stream(
                    kafka_settings,
                    Stream.SEND_EVENTS,
                    until=lambda ms: any(m.type == "send.accepted" for m in ms),
                )
            await eventually(lambda: len(sink.received) >= 4, what="four webhooks")

    async with running_ingest(kafka_settings) as ingest:
        for hook in sink.received:
            answer = await ingest.post(
                "/webhooks/meta",
                content=hook.body,
                headers={
                    "content-type": "application/json",
                    "x-hub-signature-256": hook.headers["x-hub-signature-256"],
                },
            )
            assert answer.status_code == 200
        await eventually(
            lambda: (
                len(_named(spans, "message.status publish")) >= 3
                and len(_named(spans, "marketing.link_clicked publish")) >= 1
            ),
            what="a span per status and click",
        )

    published = _only(spans, "send.template publish")  # the helper's span: the trace's root
    accepted = _only(spans, "send.accepted publish")
    assert published.context is not None
    assert accepted.context is not None
    send_trace = published.context.trace_id
    assert accepted.context.trace_id == send_trace

    statuses = _named(spans, "message.status publish")
    assert len(statuses) == 3, "sent, delivered, read"
    for status in statuses:
        assert status.kind == SpanKind.PRODUCER
        assert status.context is not None
        assert status.context.trace_id != send_trace, "a webhook is a trace of its own"
        (link,) = status.links
        assert link.context.trace_id == send_trace
        assert link.context.span_id == accepted.context.span_id, "to the accepted send"
        assert link.attributes == {"mmbus.join": "biz_opaque_callback_data"}
        assert status.attributes is not None
        assert status.attributes["mmbus.send_linked"] is True
        assert status.attributes["messaging.destination.name"] == topic_name(
            Stream.MESSAGE_STATUS, kafka_settings.topic_prefix
        )

    (click,) = _named(spans, "marketing.link_clicked publish")
    (link,) = click.links
    assert link.context.trace_id == send_trace
    assert link.context.span_id == published.context.span_id, "to the command with the token"
    assert link.attributes == {"mmbus.join": "tracking_token"}

    # Each webhook's trace: the receiver's request span, the normaliser's span as its
    # child (through the raw record's headers), and the event's span below that.
    requests = {s.context.span_id: s for s in _named(spans, "POST /webhooks/meta") if s.context}
    assert len(requests) == 4
    assert all(r.kind == SpanKind.SERVER for r in requests.values())
    assert all(
        r.attributes is not None and r.attributes["http.response.status_code"] == 200
        for r in requests.values()
    )
    raw_topic = topic_name(Stream.RAW_WEBHOOKS, kafka_settings.topic_prefix)
    webhooks = {
        s.context.span_id: s for s in _named(spans, "webhook.received process") if s.context
    }
    assert len(webhooks) == 4
    for webhook in webhooks.values():
        assert webhook.parent is not None
        assert webhook.parent.span_id in requests
        assert webhook.attributes is not None
        assert webhook.attributes["messaging.destination.name"] == raw_topic
    for event in [*statuses, click]:
        assert event.parent is not None
        assert event.parent.span_id in webhooks
