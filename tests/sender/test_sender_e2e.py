"""The sender on the real broker against the simulator: every command ends exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from mmbus.contracts.envelope import Message, new_id
from mmbus.contracts.topics import Stream, topic_name
from mmbus.contracts.webhook_events import (
    TemplateStatusChanged,
    TemplateStatusChangedData,
    UserMarketingPreferenceChanged,
    UserMarketingPreferenceChangedData,
)
from services.common.settings import CommonSettings
from tests.sender.support import (
    command,
    publish,
    publish_events,
    read_stream,
    read_to_end,
    running_sender,
    sender_settings,
    simulator_sends,
    terminal_by_command,
    terminals_cover,
)
from tests.simulator.support import (
    FALLBACK_NUMBER,
    NUMBER,
    NUMBER_2,
    STOPPED_USER,
    US_USER,
)


async def test_mixed_commands_each_end_exactly_once(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    url, sim = simulator
    commands = [
        *[command(NUMBER, f"4479111234{i:02d}") for i in range(20)],  # MM API
        *[
            command(NUMBER, f"4915112345{i:03d}", "order_update", "UTILITY") for i in range(10)
        ],  # Cloud API
        *[
            command(NUMBER, f"4479111235{i:02d}", category=None) for i in range(5)
        ],  # category looked up
        command(NUMBER, US_USER),  # suppressed: US marketing
        command(NUMBER, "989123456789", "order_update", "UTILITY"),  # suppressed: sanctioned
        command(
            NUMBER, "447911123456", "order_update", "UTILITY", route="marketing_messages"
        ),  # rejected
        command(
            FALLBACK_NUMBER, "447911123499", waba_id="203301230451409"
        ),  # not onboarded -> fallback
        command(NUMBER, "447911123498", "max_price_promo", bid_multiplier=1.5),
    ]
    await publish(kafka_settings, commands)
    ids = {c.data.command_id for c in commands}
    async with running_sender(sender_settings(kafka_settings, url)):
        events = await read_stream(kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids))
    terminals = terminal_by_command(events)
    assert set(terminals) == ids
    assert set(terminals.values()) == {1}, "exactly one terminal event per command"
    by_type = {e.data.command_id: e.type for e in events if e.type != "send.attempted"}
    assert by_type[commands[35].data.command_id] == "send.suppressed"
    assert by_type[commands[36].data.command_id] == "send.suppressed"
    assert by_type[commands[37].data.command_id] == "send.rejected"
    accepted = {e.data.command_id: e for e in events if e.type == "send.accepted"}
    assert len(accepted) == 37
    sends = simulator_sends(sim)
    assert set(sends) == set(accepted)
    assert set(sends.values()) == {1}, "the simulator received each accepted message exactly once"
    stored = {m["wamid"]: m for m in sim.get("/_admin/messages").json()["messages"]}
    for event in accepted.values():
        assert stored[event.data.wamid]["endpoint"] == event.data.decision.endpoint
    fallback = accepted[commands[38].data.command_id]
    assert stored[fallback.data.wamid]["route"] == "cloud_api_fallback"
    observed = await read_stream(kafka_settings, Stream.ACCOUNT, until=lambda m: len(m) >= 2)
    assert {e.data.waba_id for e in observed if e.type == "account.onboarding_observed"} == {
        "102290129340398",
        "203301230451409",
    }
    # The five commands without a category shared one lookup, recorded before it was used.
    lookups = await read_to_end(kafka_settings, Stream.TEMPLATES)
    assert [(e.type, e.data.name, e.data.category) for e in lookups] == [
        ("template.category_observed", "spring_sale", "MARKETING")
    ]
    for c in commands[30:35]:
        reasons = accepted[c.data.command_id].data.decision.reasons
        assert "template category MARKETING from the template stream" in reasons
    # Every attempt was durable before its call: attempted precedes the result, per command.
    for cid in accepted:
        kinds = [e.type for e in events if e.data.command_id == cid]
        assert kinds[0] == "send.attempted"
        assert kinds[-1] == "send.accepted"


async def test_poison_records_are_dead_lettered_and_the_consumer_goes_on(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    url, _ = simulator
    good_before, good_after = command(NUMBER, "447911123401"), command(NUMBER, "447911123402")
    await publish(kafka_settings, [good_before])
    producer = AIOKafkaProducer(**kafka_settings.kafka_client_options())
    await producer.start()
    topic = topic_name(Stream.SEND_COMMANDS, kafka_settings.topic_prefix)
    bad_phone = orjson.loads(good_before.model_dump_json())
    bad_phone["data"]["to"] = "12345"
    bad_phone["data"]["command_id"] = "0b1f4f0a-9d0e-4d7e-8c1a-2f3e4d5c6b7a"
    unknown = {**orjson.loads(good_before.model_dump_json()), "type": "send.sms"}
    try:
        for value in (
            b'{"type": "send.template", "version": 1, "da',
            orjson.dumps(unknown),
            orjson.dumps(bad_phone),
        ):
            await producer.send_and_wait(topic, value, key=NUMBER.encode())
    finally:
        await producer.stop()
    await publish(kafka_settings, [good_after])
    async with running_sender(sender_settings(kafka_settings, url)):
        events = await read_stream(
            kafka_settings,
            Stream.SEND_EVENTS,
            until=lambda es: (
                {good_before.data.command_id, good_after.data.command_id}
                <= set(terminal_by_command(es))
                and sum(e.type == "send.rejected" for e in es) >= 3
            ),
        )
        dead = await read_stream(kafka_settings, Stream.DEAD_LETTERS, until=lambda m: len(m) >= 3)
    assert sorted(d.data.reason for d in dead) == [
        "invalid_json",
        "invalid_message",
        "unknown_type",
    ]
    phone = next(d for d in dead if d.data.reason == "invalid_message")
    assert any("data.to" in e for e in phone.data.errors)
    assert phone.data.value_b64
    assert phone.data.source_topic == topic
    rejected = [e for e in events if e.type == "send.rejected"]
    assert {r.data.command_id for r in rejected} >= {"0b1f4f0a-9d0e-4d7e-8c1a-2f3e4d5c6b7a"}
    assert all(r.data.dead_letter_topic for r in rejected)
    kinds = {e.data.command_id: e.type for e in events if e.type == "send.accepted"}
    assert set(kinds) == {good_before.data.command_id, good_after.data.command_id}


async def test_opted_out_user_from_the_preference_stream_is_suppressed(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    url, sim = simulator
    stop = UserMarketingPreferenceChanged(
        id="pref-1",
        time=datetime.now(UTC),
        source="tests",
        subject=STOPPED_USER,
        data=UserMarketingPreferenceChangedData(
            user_id=STOPPED_USER,
            preference="stop",
            timestamp=datetime.now(UTC),
            waba_id="102290129340398",
        ),
    )
    await publish_events(kafka_settings, Stream.PREFERENCES, [stop])
    marketing, utility = (
        command(NUMBER, STOPPED_USER),
        command(NUMBER_2, STOPPED_USER, "order_update", "UTILITY"),
    )
    await publish(kafka_settings, [marketing, utility])
    ids = {marketing.data.command_id, utility.data.command_id}
    async with running_sender(sender_settings(kafka_settings, url)):
        events = await read_stream(kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids))
    final = {e.data.command_id: e for e in events if e.type != "send.attempted"}
    suppressed = final[marketing.data.command_id]
    assert suppressed.type == "send.suppressed"
    assert suppressed.data.rule == "user_stopped_marketing"
    assert any("pref-1" in r for r in suppressed.data.decision.reasons), (
        "the decision names its evidence"
    )
    assert final[utility.data.command_id].type == "send.accepted"
    assert set(simulator_sends(sim)) == {utility.data.command_id}


async def test_read_timeout_after_send_is_indeterminate_and_not_resent(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    url, sim = simulator
    sim.put(
        "/_admin/faults", json={"timeout_after_accept_rate": 1.0, "timeout_hang_s": 3}
    ).raise_for_status()
    ambiguous = command(NUMBER, "447911123477")
    await publish(kafka_settings, [ambiguous])
    settings = sender_settings(kafka_settings, url, sender_read_timeout_s=0.5)
    async with running_sender(settings):
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover({ambiguous.data.command_id})
        )
    kinds = [e.type for e in events if e.data.command_id == ambiguous.data.command_id]
    assert kinds == ["send.attempted", "send.indeterminate"], (
        "an ambiguous send is never retried blindly"
    )
    final = events[-1]
    assert final.data.cause == "read_timeout_after_send"
    assert simulator_sends(sim)[ambiguous.data.command_id] == 1, "Meta has it exactly once"


async def test_metrics_health_and_readiness(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    from services.sender.main import http_app

    url, _ = simulator
    one = command(NUMBER, "447911123466")
    await publish(kafka_settings, [one])
    async with running_sender(sender_settings(kafka_settings, url)) as sender:
        await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover({one.data.command_id})
        )
        transport = httpx.ASGITransport(app=http_app(sender))
        async with httpx.AsyncClient(transport=transport, base_url="http://sender") as client:
            ready = await client.get("/ready")
            health = await client.get("/health")
            metrics = (await client.get("/metrics")).text
    assert ready.status_code == 200
    assert ready.json()["knowledge_caught_up"] is True
    assert health.json() == {"status": "ok"}
    assert (
        'mmbus_sender_sends_total{outcome="accepted",reason="none",route="marketing_messages"} 1.0'
        in metrics
    )
    for name in (
        "mmbus_sender_in_flight",
        "mmbus_sender_rate_limiter_wait_seconds",
        "mmbus_sender_http_latency_seconds",
    ):
        assert name in metrics


async def test_a_template_approved_moments_ago_is_held_for_its_sync_then_sent(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    url, sim = simulator
    # Inside the 10-minute sync window for another 12 s: long enough for the sender to
    # start and route the command (a few seconds on a slow machine), short for a test.
    approved = datetime.now(UTC) - timedelta(minutes=10) + timedelta(seconds=12)
    await publish_events(
        kafka_settings,
        Stream.TEMPLATES,
        [
            TemplateStatusChanged(
                id=new_id(),
                time=approved,
                source="test",
                subject="spring_sale",
                data=TemplateStatusChangedData(
                    waba_id="102290129340398", name="spring_sale", event="APPROVED"
                ),
            )
        ],
    )
    held = command(NUMBER, "447911123477")
    await publish(kafka_settings, [held])
    settings = sender_settings(kafka_settings, url, sender_template_sync_guard="hold")
    async with running_sender(settings):
        events = await read_stream(
            kafka_settings, Stream.SEND_EVENTS, until=terminals_cover({held.data.command_id})
        )
    (accepted,) = [e for e in events if e.type == "send.accepted"]
    assert accepted.data.requested_at is not None
    assert accepted.data.requested_at >= approved + timedelta(minutes=10), "not before the sync"
    reasons = " ".join(accepted.data.decision.reasons)
    assert "approved under 10 minutes ago" in reasons
    assert "held for the sync" in reasons
    assert simulator_sends(sim) == {held.data.command_id: 1}


async def _two_runs(
    kafka_settings: CommonSettings, url: str, republish: bool, **overrides: Any
) -> tuple[list[Message], set[str], float]:
    """A first sender run to the end, then a restarted one over new commands (and, with
    ``republish``, the first run's first command again). Returns the events, the command
    ids and how many old send events the restarted sender read to rebuild its ledger."""
    settings = sender_settings(kafka_settings, url, **overrides)
    first = [command(NUMBER if i % 2 else NUMBER_2, f"4479111240{i:02d}") for i in range(40)]
    await publish(kafka_settings, first)
    async with running_sender(settings) as sender:
        await read_stream(
            kafka_settings,
            Stream.SEND_EVENTS,
            until=terminals_cover({c.data.command_id for c in first}),
        )
        assert sender.metrics.ledger_rebuild_events._value.get() == 0, "a fresh log"
    again = [command(NUMBER if i % 2 else NUMBER_2, f"4479111241{i:02d}") for i in range(20)]
    await publish(kafka_settings, [*again, *first[:1]] if republish else again)
    ids = {c.data.command_id for c in [*first, *again]}
    async with running_sender(settings) as sender:
        events = await read_stream(kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids))
        scanned = sender.metrics.ledger_rebuild_events._value.get()
    return events, ids, scanned


async def test_a_restarted_sender_rebuilds_its_ledger_from_the_checkpoint(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    """Outside the idempotency window, the ledger is rebuilt from the checkpoint the
    commit carries, not the whole send-event log; results stay exactly once."""
    url, sim = simulator
    events, ids, scanned = await _two_runs(
        kafka_settings, url, republish=False, sender_idempotency_window_s=0
    )
    assert scanned == 0, f"the restart read {scanned} old send events, not the checkpoint's 0"
    terminals = terminal_by_command(events)
    assert set(terminals) == ids
    assert set(terminals.values()) == {1}, "exactly one result per command"
    assert set(simulator_sends(sim).values()) == {1}, "each message reached the API once"


async def test_a_command_published_again_within_the_window_is_not_sent_again(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    """A command id is the idempotency key across restarts for the window (7 days by
    default): the rebuild reads the window's results, so the repeat is skipped."""
    url, sim = simulator
    events, ids, scanned = await _two_runs(kafka_settings, url, republish=True)
    assert scanned >= 2 * 40, "the window's results (attempted and accepted each) were read"
    terminals = terminal_by_command(events)
    assert set(terminals) == ids
    assert set(terminals.values()) == {1}, "one result per command, the repeat included"
    assert set(simulator_sends(sim).values()) == {1}, "each message reached the API once"


async def test_a_command_that_waited_for_a_lookup_keeps_its_place_in_the_numbers_line(
    kafka_settings: CommonSettings, simulator: tuple[str, httpx.Client]
) -> None:
    """The first MARKETING command waits for the WABA onboarding lookup while the UTILITY
    commands behind it need none. It still goes out first or second, not after every
    one of them: a command that lost its place would hold the partition's committed
    offset back while all the later ones finish."""
    url, _ = simulator
    first = command(NUMBER, "447911124000")  # MARKETING: the WABA is unknown to the log
    behind = [command(NUMBER, f"4915112346{i:03d}", "order_update", "UTILITY") for i in range(8)]
    await publish(kafka_settings, [first, *behind])
    ids = {c.data.command_id for c in [first, *behind]}
    # A slot every ~0.36 s: the lookup (milliseconds) ends long before the second slot.
    settings = sender_settings(kafka_settings, url, sender_rate_per_s=3)
    async with running_sender(settings):
        events = await read_stream(kafka_settings, Stream.SEND_EVENTS, until=terminals_cover(ids))
    calls = sorted(
        (e.data.requested_at, e.data.command_id) for e in events if e.type == "send.accepted"
    )
    assert {cid for _, cid in calls} == ids
    place = [cid for _, cid in calls].index(first.data.command_id)
    assert place <= 1, f"the oldest command went out {place + 1}th of {len(calls)}"
