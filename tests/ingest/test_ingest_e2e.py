"""Simulator webhooks -> ingest (uvicorn, real HTTP) -> Kafka -> normalizer -> typed events."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from pydantic import SecretStr

from mmbus.contracts.topics import Stream
from services.common.ports import free_port
from services.common.settings import CommonSettings
from services.ingest.main import run_ingest
from services.ingest.normalizer import Normalizer
from services.ingest.settings import IngestSettings
from services.simulator.server import SimulatorThread
from services.simulator.settings import SimulatorSettings
from tests.sender.support import read_stream
from tests.simulator.support import NUMBER, make_world

SECRET = "e2e-app-secret"


async def test_simulator_webhooks_become_typed_events_and_replay_gives_the_same_ids(
    kafka_settings: CommonSettings,
) -> None:
    port = free_port()
    settings = IngestSettings.model_validate(
        {
            **kafka_settings.model_dump(),
            "ingest_app_secrets": [SecretStr(SECRET)],
            "ingest_port": port,
            "normalizer_group_id": f"{kafka_settings.topic_prefix}normalizer",
        }
    )
    stop = asyncio.Event()
    ingest = asyncio.create_task(run_ingest(settings, stop))
    sim_settings = SimulatorSettings(
        webhook_url=f"http://127.0.0.1:{port}/webhooks/meta", app_secret=SecretStr(SECRET)
    )
    try:
        # Connect retries (with httpcore's backoff) until the receiver listens.
        retrying = httpx.AsyncHTTPTransport(retries=10)
        async with httpx.AsyncClient(timeout=10, transport=retrying) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
        with SimulatorThread(sim_settings, make_world(pair_limit_s=0.0)) as sim:
            async with httpx.AsyncClient(base_url=sim.base_url, timeout=10) as api:
                behaviour = (await api.get("/_admin/behaviour")).json()
                await api.put(
                    "/_admin/behaviour",
                    json={
                        **behaviour,
                        "duplicate_probability": 1.0,
                        "delivered_probability": 1.0,
                        "read_probability": 1.0,
                        "click_probability": 1.0,
                        "user_action_probability": 0.0,
                        "out_of_order_probability": 0.0,
                    },
                )
                wamids = []
                for i in range(3):
                    response = await api.post(
                        f"/v23.0/{NUMBER}/marketing_messages",
                        headers={"Authorization": "Bearer sim-token"},
                        json={
                            "messaging_product": "whatsapp",
                            "to": f"4479111234{i:02d}",
                            "type": "template",
                            "template": {"name": "spring_sale", "language": {"code": "en_US"}},
                            "message_activity_sharing": True,
                            "biz_opaque_callback_data": f"mmbus:cmd-{i}",
                        },
                    )
                    wamids.append(response.json()["messages"][0]["id"])
                await api.post("/_admin/wabas/203301230451409/onboard")
                statuses = await read_stream(
                    kafka_settings,
                    Stream.MESSAGE_STATUS,
                    until=lambda ms: len(ms) >= 18,  # 3 messages x 3 statuses, each delivered twice
                )
                clicks = await read_stream(
                    kafka_settings, Stream.MARKETING_CLICKS, until=lambda ms: len(ms) >= 6
                )
                account = await read_stream(
                    kafka_settings, Stream.ACCOUNT, until=lambda ms: len(ms) >= 1
                )
                deliveries = (await api.get("/_admin/webhooks")).json()["deliveries"]
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        stop.set()
        await asyncio.wait_for(ingest, 30)

    assert all(d["delivered"] for d in deliveries), "every webhook was answered 200"
    assert "mmbus_ingest_normalizer_lag_records" in metrics
    assert 'mmbus_ingest_requests_total{outcome="stored",path="/webhooks/meta"}' in metrics
    assert "mmbus_ingest_publish_seconds_count" in metrics
    ids = Counter(e.id for e in statuses)
    assert len(ids) == 9, "duplicates carry the same ids: 9 distinct status events"
    assert set(ids.values()) == {2}
    assert {e.data.wamid for e in statuses} == set(wamids)
    assert {e.data.status for e in statuses} == {"sent", "delivered", "read"}
    assert {e.correlation_id for e in statuses} == {"cmd-0", "cmd-1", "cmd-2"}
    assert all(
        e.data.pricing.category == "marketing_lite" for e in statuses if e.data.status != "read"
    )
    assert len({e.id for e in clicks}) == 3
    assert account[0].type == "account.updated"
    assert account[0].data.event == "MM_LITE_TERMS_SIGNED"

    # Replay the raw stream from the beginning into a fresh prefix: the same events, the same ids.
    replay = settings.model_copy(
        update={
            "normalizer_group_id": f"{settings.topic_prefix}replay",
            "normalizer_output_prefix": f"{settings.topic_prefix}replay.",
        }
    )
    replay_stop = asyncio.Event()
    task = asyncio.create_task(Normalizer(replay).run(replay_stop))
    try:
        again = await read_stream(
            kafka_settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}replay."}),
            Stream.MESSAGE_STATUS,
            until=lambda ms: len(ms) >= 18,
        )
    finally:
        replay_stop.set()
        await asyncio.wait_for(task, 30)
    assert sorted(e.id for e in again) == sorted(e.id for e in statuses)
    assert {e.id: e for e in again} == {e.id: e for e in statuses}
