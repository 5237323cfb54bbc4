"""The newer webhook shapes end to end: simulator -> ingest (real HTTP) -> Kafka -> typed.

BSUIDs inside and beside statuses (and beside a preference), a user action that is
not a click, a template status update with its category, an inbound message from a
user known only by BSUID with a webhook-level error beside it, and a JSON ``null`` body.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import SecretStr

from mmbus.contracts.topics import Stream
from mmbus.contracts.webhook_events import (
    MarketingLinkClicked,
    MarketingUserActionRecorded,
    MessageReceived,
    MessageStatus,
    TemplateStatusChanged,
    UserMarketingPreferenceChanged,
    WebhookErrorsReported,
    WebhookReceived,
    WebhookUnrecognized,
)
from services.common.ports import free_port
from services.common.settings import CommonSettings
from services.ingest.main import run_ingest
from services.ingest.settings import IngestSettings
from services.simulator import webhooks
from services.simulator.server import SimulatorThread
from services.simulator.settings import SimulatorSettings
from tests.ingest.test_receiver import signed
from tests.sender.support import read_stream
from tests.simulator.support import NUMBER, ONBOARDED_WABA, UK_USER, make_world

SECRET = "new-app-secret"  # tests.ingest.test_receiver.NEW: what signed() signs with


async def _drive_simulator(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as api:
        behaviour = (await api.get("/_admin/behaviour")).json()
        certain = {"delivered_probability": 1.0, "read_probability": 1.0}
        once = {"duplicate_probability": 0.0, "out_of_order_probability": 0.0}
        actions = {"click_probability": 1.0, "user_action_probability": 1.0}
        await api.put("/_admin/behaviour", json={**behaviour, **certain, **once, **actions})
        sent = await api.post(
            f"/v23.0/{NUMBER}/marketing_messages",
            headers={"Authorization": "Bearer sim-token"},
            json={
                "messaging_product": "whatsapp",
                "to": UK_USER,
                "type": "template",
                "template": {"name": "spring_sale", "language": {"code": "en_US"}},
                "message_activity_sharing": True,
            },
        )
        stop = {"phone_number_id": NUMBER, "stop": True}
        await api.post(f"/_admin/users/{UK_USER}/preference", json=stop)
        template = {"waba_id": ONBOARDED_WABA, "name": "autumn_sale", "language": "en_US"}
        await api.post("/_admin/templates", json={**template, "category": "MARKETING"})
        inbound = await api.post(
            "/_admin/inbound",
            json={
                "phone_number_id": NUMBER,
                "wa_id": UK_USER,
                "text": "is the sale on?",
                "username_only": True,
                "unsupported_payload_error": True,
            },
        )
        return {"wamid": sent.json()["messages"][0]["id"], "inbound": inbound.json()["wamid"]}


async def test_newer_shapes_from_the_simulator_become_their_typed_events(
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
    read = {
        stream: lambda ms, n=n: len(ms) >= n
        for stream, n in [
            (Stream.MESSAGE_STATUS, 3),
            (Stream.MARKETING_CLICKS, 2),
            (Stream.TEMPLATES, 1),
            (Stream.PREFERENCES, 1),
            (Stream.INBOUND_MESSAGES, 1),
            (Stream.WEBHOOK_ERRORS, 1),
            (Stream.UNRECOGNIZED, 1),
        ]
    }
    try:
        retrying = httpx.AsyncHTTPTransport(retries=10)  # until the receiver listens
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=10, transport=retrying
        ) as client:
            assert (await client.get("/health")).status_code == 200
            null = await client.post("/webhooks/meta", content=b"null", headers=signed(b"null"))
        with SimulatorThread(sim_settings, make_world(pair_limit_s=0.0)) as sim:
            ids = await _drive_simulator(sim.base_url)
            got = {s: await read_stream(kafka_settings, s, until=u) for s, u in read.items()}
        raw = await read_stream(kafka_settings, Stream.RAW_WEBHOOKS, until=lambda m: len(m) >= 9)
    finally:
        stop.set()
        await asyncio.wait_for(ingest, 30)

    assert null.status_code == 200, "JSON null is JSON: stored, never 'not JSON'"
    (unrecognized,) = got[Stream.UNRECOGNIZED]
    assert isinstance(unrecognized, WebhookUnrecognized)
    assert (unrecognized.data.reason, unrecognized.data.value) == (
        "the body is not a JSON object",
        None,
    )

    bsuid = webhooks.bsuid_of(UK_USER, ONBOARDED_WABA)
    parent = webhooks.bsuid_of(UK_USER, ONBOARDED_WABA, parent=True)
    statuses = got[Stream.MESSAGE_STATUS]
    assert all(isinstance(s, MessageStatus) for s in statuses)
    assert sorted(s.data.status for s in statuses) == ["delivered", "read", "sent"]
    for status in statuses:
        assert isinstance(status, MessageStatus)
        assert status.data.wamid == ids["wamid"]
        assert status.data.recipient_id == UK_USER
        assert status.data.recipient_user_id == bsuid, "inside the status"
        assert status.data.recipient_parent_user_id == parent, "beside it, in contacts[]"

    by_type = {e.type: e for e in got[Stream.MARKETING_CLICKS]}
    assert set(by_type) == {"marketing.link_clicked", "marketing.user_action_recorded"}
    assert isinstance(by_type["marketing.link_clicked"], MarketingLinkClicked)
    action = by_type["marketing.user_action_recorded"]
    assert isinstance(action, MarketingUserActionRecorded)
    assert action.data.action_type == webhooks.OTHER_USER_ACTION

    (stopped,) = got[Stream.PREFERENCES]
    assert isinstance(stopped, UserMarketingPreferenceChanged)
    assert (stopped.data.user_id, stopped.data.user_bsuid) == (UK_USER, bsuid), "BSUID beside"

    (template,) = got[Stream.TEMPLATES]
    assert isinstance(template, TemplateStatusChanged)
    assert (template.data.name, template.data.category) == ("autumn_sale", "MARKETING")

    (inbound,) = got[Stream.INBOUND_MESSAGES]
    assert isinstance(inbound, MessageReceived)
    assert (inbound.version, inbound.data.wamid) == (2, ids["inbound"])
    assert (inbound.data.from_, inbound.data.from_user_id) == (None, bsuid)

    (reported,) = got[Stream.WEBHOOK_ERRORS]
    assert isinstance(reported, WebhookErrorsReported)
    (carrier,) = [
        r for r in raw if isinstance(r, WebhookReceived) and ids["inbound"] in r.data.body
    ]
    assert reported.causation_id == reported.data.raw_id == carrier.id
    assert [e.code for e in reported.data.errors] == [131000]
    assert reported.data.ids_beside == (ids["inbound"],)
    assert inbound.causation_id == carrier.id
