"""Webhooks back: signed like Meta's, in Meta's envelope, with Meta's quirks, retried."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from services.common.serving import ServeInThread
from services.simulator.server import SimulatorThread
from services.simulator.settings import SimulatorSettings
from tests.simulator.conftest import APP_SECRET
from tests.simulator.support import (
    FALLBACK_NUMBER,
    NUMBER,
    ONBOARDED_WABA,
    STOPPED_USER,
    UK_USER,
    US_USER,
    Received,
    WebhookSink,
    changes,
    make_world,
    statuses,
)
from tests.simulator.test_rules_over_http import TOKEN, template_body

Sink = tuple[WebhookSink, str]


def _send(
    sim: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str] = TOKEN
) -> str:
    response = sim.post(path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    wamid: str = response.json()["messages"][0]["id"]
    return wamid


def _for(wamid: str, received: list[Received]) -> list[dict[str, Any]]:
    return [s for s in statuses(received) if s["id"] == wamid]


def test_signature_verifies_with_an_independent_hmac(sim: httpx.Client, sink: Sink) -> None:
    _send(sim, f"/v23.0/{NUMBER}/marketing_messages", template_body("spring_sale"))
    received = sink[0].wait_for(lambda r: len(r) >= 1)
    for hook in received:
        expected = hmac.new(APP_SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
        assert hook.headers["x-hub-signature-256"] == f"sha256={expected}"
        assert hook.headers["content-type"] == "application/json"


def test_mm_api_send_gets_sent_delivered_read_priced_marketing_lite_and_a_click(
    sim: httpx.Client, sink: Sink
) -> None:
    body = template_body(
        "spring_sale", message_activity_sharing=True, biz_opaque_callback_data="mmbus:cmd-1"
    )
    wamid = _send(sim, f"/v23.0/{NUMBER}/marketing_messages", body)
    received = sink[0].wait_for(
        lambda r: (
            len(_for(wamid, r)) >= 3 and any("user_actions" in v for v in changes(r, "messages"))
        )
    )
    by_status = {s["status"]: s for s in _for(wamid, received)}
    assert set(by_status) == {"sent", "delivered", "read"}
    for name in ("sent", "delivered"):
        assert by_status[name]["pricing"] == {
            "billable": True,
            "pricing_model": "PMP",
            "category": "marketing_lite",
            "type": "regular",
        }
        assert by_status[name]["conversation"]["origin"]["type"] == "marketing_lite"
    for s in by_status.values():
        assert s["biz_opaque_callback_data"] == "mmbus:cmd-1"
        assert s["recipient_id"] == UK_USER
        assert isinstance(s["timestamp"], str)
        assert s["timestamp"].isdigit()
    envelope = received[0].json
    assert envelope["object"] == "whatsapp_business_account"
    assert envelope["entry"][0]["id"] == ONBOARDED_WABA
    assert envelope["entry"][0]["changes"][0]["field"] == "messages"
    (action,) = [a for v in changes(received, "messages") for a in v.get("user_actions", [])]
    assert action["action_type"] == "marketing_messages_link_click"
    assert set(action["marketing_messages_link_click_data"]) == {
        "tracking_token",
        "click_id",
        "click_component",
    }


def test_fallback_send_is_priced_marketing_and_has_no_clicks(sim: httpx.Client, sink: Sink) -> None:
    wamid = _send(
        sim,
        f"/v23.0/{FALLBACK_NUMBER}/marketing_messages",
        template_body("spring_sale", message_activity_sharing=True),
    )
    received = sink[0].wait_for(lambda r: len(_for(wamid, r)) >= 3)
    sent = next(s for s in _for(wamid, received) if s["status"] == "sent")
    assert sent["pricing"]["category"] == "marketing"
    assert not [v for v in changes(received, "messages") if "user_actions" in v]


@pytest.mark.parametrize(
    ("to", "template", "code"),
    [
        (US_USER, "spring_sale", 131049),
        (STOPPED_USER, "spring_sale", 131050),
        ("5351234567", "order_update", 131026),
    ],
)
def test_asynchronous_failures(
    sim: httpx.Client, sink: Sink, to: str, template: str, code: int
) -> None:
    wamid = _send(
        sim,
        f"/v23.0/{NUMBER}/marketing_messages"
        if template == "spring_sale"
        else f"/v23.0/{NUMBER}/messages",
        template_body(template, to=to),
    )
    (failed,) = _for(wamid, sink[0].wait_for(lambda r: len(_for(wamid, r)) >= 1))
    assert failed["status"] == "failed"
    assert failed["errors"][0]["code"] == code
    assert failed["errors"][0]["error_data"]["details"]


def test_utility_to_a_us_number_is_delivered(sim: httpx.Client, sink: Sink) -> None:
    wamid = _send(sim, f"/v23.0/{NUMBER}/messages", template_body("order_update", to=US_USER))
    got = {s["status"] for s in _for(wamid, sink[0].wait_for(lambda r: len(_for(wamid, r)) >= 3))}
    assert got == {"sent", "delivered", "read"}


def test_duplicates_and_out_of_order_statuses_are_reproduced(sim: httpx.Client, sink: Sink) -> None:
    behaviour = sim.get("/_admin/behaviour").json()
    sim.put(
        "/_admin/behaviour",
        json={
            **behaviour,
            "duplicate_probability": 1,
            "out_of_order_probability": 1,
            "click_probability": 0,
        },
    ).raise_for_status()
    wamid = _send(sim, f"/v23.0/{NUMBER}/marketing_messages", template_body("spring_sale"))
    order = [s["status"] for s in _for(wamid, sink[0].wait_for(lambda r: len(_for(wamid, r)) >= 6))]
    assert sorted(order) == ["delivered", "delivered", "read", "read", "sent", "sent"]
    assert order.index("read") < order.index("delivered"), order


def test_onboarding_through_admin_sends_terms_signed_for_each_waba(
    sim: httpx.Client, sink: Sink
) -> None:
    assert sim.post("/_admin/wabas/203301230451409/onboard").json() == {
        "onboarded": ["203301230451409"]
    }
    (value,) = changes(
        sink[0].wait_for(lambda r: len(changes(r, "account_update")) >= 1), "account_update"
    )
    assert value == {
        "event": "MM_LITE_TERMS_SIGNED",
        "waba_info": {"owner_business_id": "2039485766574839", "waba_id": "203301230451409"},
    }
    fields = sim.get(
        "/v23.0/203301230451409?fields=marketing_messages_onboarding_status", headers=TOKEN
    ).json()
    assert fields["marketing_messages_onboarding_status"] == "ONBOARDED"
    wamid = _send(sim, f"/v23.0/{FALLBACK_NUMBER}/marketing_messages", template_body("spring_sale"))
    assert {m["wamid"]: m for m in sim.get("/_admin/messages").json()["messages"]}[wamid][
        "route"
    ] == "marketing_messages"


def test_user_preferences_stop_and_resume(sim: httpx.Client, sink: Sink) -> None:
    sim.post(
        f"/_admin/users/{UK_USER}/preference", json={"phone_number_id": NUMBER, "stop": True}
    ).raise_for_status()
    sim.post(
        f"/_admin/users/{UK_USER}/preference", json={"phone_number_id": NUMBER, "stop": False}
    ).raise_for_status()
    values = changes(
        sink[0].wait_for(lambda r: len(changes(r, "user_preferences")) >= 2), "user_preferences"
    )
    assert [v["user_preferences"][0]["value"] for v in values] == ["stop", "resume"]
    assert values[0]["user_preferences"][0]["wa_id"] == UK_USER


def test_template_status_update(sim: httpx.Client, sink: Sink) -> None:
    sim.post(
        "/_admin/templates",
        json={
            "waba_id": ONBOARDED_WABA,
            "name": "autumn_sale",
            "language": "en_US",
            "category": "MARKETING",
            "status": "APPROVED",
            "id": "9100",
        },
    ).raise_for_status()
    (value,) = changes(
        sink[0].wait_for(lambda r: len(changes(r, "message_template_status_update")) >= 1),
        "message_template_status_update",
    )
    assert (value["event"], value["message_template_name"], value["message_template_id"]) == (
        "APPROVED",
        "autumn_sale",
        9100,
    )


def _settings(url: str) -> SimulatorSettings:
    return SimulatorSettings(webhook_url=url, app_secret=SecretStr(APP_SECRET))


def _fast_retries(client: httpx.Client, attempts: int) -> None:
    client.put(
        "/_admin/behaviour",
        json={
            "webhook_max_attempts": attempts,
            "webhook_retry_base_ms": 10,
            "webhook_retry_max_ms": 40,
            "delivered_probability": 0,
            "duplicate_probability": 0,
        },
    ).raise_for_status()


def test_webhook_is_retried_until_the_receiver_answers_200() -> None:
    receiver = WebhookSink(fail_first=2)
    with (
        ServeInThread(receiver.app()) as hook,
        SimulatorThread(_settings(f"{hook.base_url}/webhooks"), make_world()) as server,
        httpx.Client(base_url=server.base_url) as sim,
    ):
        _fast_retries(sim, attempts=5)
        _send(sim, f"/v23.0/{NUMBER}/marketing_messages", template_body("spring_sale"))
        receiver.wait_for(lambda r: len(r) == 1)
        (delivery,) = _wait_deliveries(sim, lambda ds: bool(ds) and ds[0]["delivered"])
    assert delivery["delivered"] is True
    assert [a["status"] for a in delivery["attempts"]] == [500, 500, 200]


def test_webhook_retries_are_bounded() -> None:
    receiver = WebhookSink(always_fail=True)
    with (
        ServeInThread(receiver.app()) as hook,
        SimulatorThread(_settings(f"{hook.base_url}/webhooks"), make_world()) as server,
        httpx.Client(base_url=server.base_url) as sim,
    ):
        _fast_retries(sim, attempts=3)
        _send(sim, f"/v23.0/{NUMBER}/marketing_messages", template_body("spring_sale"))
        receiver.wait_refused(3)
        deliveries = _wait_deliveries(sim, lambda ds: bool(ds) and ds[0]["gave_up"])
    assert len(deliveries[0]["attempts"]) == 3
    assert receiver.received == []


def _wait_deliveries(sim: httpx.Client, done: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        deliveries: list[dict[str, Any]] = sim.get("/_admin/webhooks").json()["deliveries"]
        if done(deliveries):
            return deliveries
    raise AssertionError("deliveries did not reach the expected state")


def test_360dialog_webhooks_carry_the_provider_secret(sim: httpx.Client, sink: Sink) -> None:
    _send(
        sim,
        "/360dialog/marketing_messages",
        template_body("spring_sale"),
        headers={"D360-API-KEY": "d360-key"},
    )
    hook = sink[0].wait_for(lambda r: len(r) >= 1)[0]
    assert hook.headers["x-mmbus-provider-secret"] == "d360-hook-secret"
    assert (
        orjson.loads(hook.body)["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]
        == NUMBER
    )
