"""Every rule of the simulated Graph API, by table, over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.simulator.support import (
    FALLBACK_NUMBER,
    FALLBACK_WABA,
    NUMBER,
    NUMBER_2,
    UK_USER,
)

TOKEN = {"Authorization": "Bearer sim-token"}


def template_body(name: str, to: str = UK_USER, **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {"name": name, "language": {"code": "en_US"}},
        **extra,
    }


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: dict[str, Any]
    status: int
    code: int | None = None
    route: str | None = None
    pricing: str | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(TOKEN))
    disable_flag_on: str | None = None


CASES = [
    Case(
        "marketing via MM API, onboarded",
        f"/v23.0/{NUMBER}/marketing_messages",
        template_body("spring_sale"),
        200,
        route="marketing_messages",
        pricing="marketing_lite",
    ),
    Case(
        "bid_spec template via MM API",
        f"/v23.0/{NUMBER}/marketing_messages",
        template_body("max_price_promo"),
        200,
        route="marketing_messages",
        pricing="marketing_lite",
    ),
    Case(
        "utility template on /marketing_messages",
        f"/v23.0/{NUMBER}/marketing_messages",
        template_body("order_update"),
        400,
        code=100,
    ),
    Case(
        "not onboarded, CLOUD_API_FALLBACK (default)",
        f"/v23.0/{FALLBACK_NUMBER}/marketing_messages",
        template_body("spring_sale"),
        200,
        route="cloud_api_fallback",
        pricing="marketing",
    ),
    Case(
        "not onboarded, explicit CLOUD_API_FALLBACK",
        f"/v23.0/{FALLBACK_NUMBER}/marketing_messages",
        template_body("spring_sale", product_policy="CLOUD_API_FALLBACK"),
        200,
        route="cloud_api_fallback",
        pricing="marketing",
    ),
    Case(
        "not onboarded, STRICT",
        f"/v23.0/{FALLBACK_NUMBER}/marketing_messages",
        template_body("spring_sale", product_policy="STRICT"),
        400,
        code=100,
    ),
    Case(
        "not onboarded, fallback, Cloud API marketing disabled",
        f"/v23.0/{FALLBACK_NUMBER}/marketing_messages",
        template_body("spring_sale"),
        400,
        code=131063,
        disable_flag_on=FALLBACK_WABA,
    ),
    Case(
        "marketing on /messages, disable flag",
        f"/v23.0/{NUMBER}/messages",
        template_body("spring_sale"),
        400,
        code=131063,
        disable_flag_on="102290129340398",
    ),
    Case(
        "utility on /messages, disable flag",
        f"/v23.0/{NUMBER}/messages",
        template_body("order_update"),
        200,
        route="cloud_api",
        pricing="utility",
        disable_flag_on="102290129340398",
    ),
    Case(
        "marketing on /messages",
        f"/v23.0/{NUMBER}/messages",
        template_body("spring_sale"),
        200,
        route="cloud_api",
        pricing="marketing",
    ),
    Case(
        "bid_spec template on /messages",
        f"/v23.0/{NUMBER}/messages",
        template_body("max_price_promo"),
        400,
        code=131061,
    ),
    Case(
        "unknown template",
        f"/v23.0/{NUMBER}/messages",
        template_body("no_such_template"),
        404,
        code=132001,
    ),
    Case(
        "paused template",
        f"/v23.0/{NUMBER}/marketing_messages",
        template_body("paused_promo"),
        404,
        code=132001,
    ),
    Case(
        "wrong token",
        f"/v23.0/{NUMBER}/messages",
        template_body("spring_sale"),
        401,
        code=190,
        headers={"Authorization": "Bearer nope"},
    ),
    Case(
        "no token",
        f"/v23.0/{NUMBER}/messages",
        template_body("spring_sale"),
        401,
        code=190,
        headers={},
    ),
    Case(
        "unknown phone number id",
        "/v23.0/999/messages",
        template_body("spring_sale"),
        400,
        code=100,
    ),
    Case(
        "missing messaging_product",
        f"/v23.0/{NUMBER}/messages",
        {
            "to": UK_USER,
            "type": "template",
            "template": {"name": "spring_sale", "language": {"code": "en_US"}},
        },
        400,
        code=100,
    ),
    Case(
        "360dialog MM API",
        "/360dialog/marketing_messages",
        template_body("spring_sale"),
        200,
        route="marketing_messages",
        pricing="marketing_lite",
        headers={"D360-API-KEY": "d360-key"},
    ),
    Case(
        "360dialog Cloud API",
        "/360dialog/messages",
        template_body("order_update"),
        200,
        route="cloud_api",
        pricing="utility",
        headers={"D360-API-KEY": "d360-key"},
    ),
    Case(
        "360dialog wrong key",
        "/360dialog/marketing_messages",
        template_body("spring_sale"),
        401,
        code=190,
        headers={"D360-API-KEY": "bad"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_send_rules(sim: httpx.Client, case: Case) -> None:
    if case.disable_flag_on:
        sim.post(
            f"/v23.0/{case.disable_flag_on}",
            json={"disable_marketing_messages_on_cloud_api": True},
            headers=TOKEN,
        ).raise_for_status()
    response = sim.post(case.path, json=case.body, headers=case.headers)
    assert response.status_code == case.status, response.text
    body = response.json()
    if case.status == 200:
        assert body["messaging_product"] == "whatsapp"
        assert body["contacts"] == [{"input": case.body["to"], "wa_id": case.body["to"]}]
        (message,) = body["messages"]
        assert message["id"].startswith("wamid.")
        assert message["message_status"] == "accepted"
        stored = {m["wamid"]: m for m in sim.get("/_admin/messages").json()["messages"]}[
            message["id"]
        ]
        assert (stored["route"], stored["pricing_category"]) == (case.route, case.pricing)
    else:
        error = body["error"]
        assert error["code"] == case.code
        assert error["message"].startswith(f"(#{case.code})")
        assert error["fbtrace_id"]
        assert error["type"]
    (call,) = [c for c in sim.get("/_admin/calls").json()["calls"] if c["endpoint"] in case.path]
    assert call["payload"] == case.body
    assert call["outcome"] == ("accepted" if case.status == 200 else "rejected")


def test_error_bodies_carry_details(sim: httpx.Client) -> None:
    sim.post(
        "/v23.0/102290129340398",
        json={"disable_marketing_messages_on_cloud_api": True},
        headers=TOKEN,
    )
    error = sim.post(
        f"/v23.0/{NUMBER}/messages", json=template_body("spring_sale"), headers=TOKEN
    ).json()["error"]
    assert error["message"] == "(#131063) Marketing templates disabled for Cloud API"
    assert "disable_marketing_messages_on_cloud_api" in error["error_data"]["details"]


def test_throughput_limit_gives_130429(sim: httpx.Client) -> None:
    # NUMBER_2 allows 2 messages per second; a burst of 5 to different users overflows it.
    codes = [
        sim.post(
            f"/v23.0/{NUMBER_2}/marketing_messages",
            json=template_body("spring_sale", to=f"4479111234{i:02d}"),
            headers=TOKEN,
        ).status_code
        for i in range(5)
    ]
    assert codes[:2] == [200, 200]
    assert 400 in codes[2:]
    rejected = sim.get("/_admin/calls?outcome=rejected").json()["calls"]
    assert {c["code"] for c in rejected} == {130429}


def test_pair_limit_gives_131056(sim: httpx.Client) -> None:
    first = sim.post(
        f"/v23.0/{NUMBER}/marketing_messages", json=template_body("spring_sale"), headers=TOKEN
    )
    second = sim.post(
        f"/v23.0/{NUMBER}/messages", json=template_body("order_update"), headers=TOKEN
    )
    other_user = sim.post(
        f"/v23.0/{NUMBER}/messages",
        json=template_body("order_update", to="4915112345678"),
        headers=TOKEN,
    )
    assert first.status_code == 200
    assert second.json()["error"]["code"] == 131056
    assert other_user.status_code == 200


def test_waba_fields_read_and_write(sim: httpx.Client) -> None:
    fields = "marketing_messages_onboarding_status,disable_marketing_messages_on_cloud_api"
    got = sim.get(f"/v23.0/{FALLBACK_WABA}", params={"fields": fields}, headers=TOKEN).json()
    assert got == {
        "marketing_messages_onboarding_status": "ELIGIBLE",
        "disable_marketing_messages_on_cloud_api": False,
        "id": FALLBACK_WABA,
    }
    assert sim.post(
        f"/v23.0/{FALLBACK_WABA}",
        data={"disable_marketing_messages_on_cloud_api": "true"},
        headers=TOKEN,
    ).json() == {"success": True}
    assert (
        sim.get(f"/v23.0/{FALLBACK_WABA}", params={"fields": fields}, headers=TOKEN).json()[
            "disable_marketing_messages_on_cloud_api"
        ]
        is True
    )
    assert (
        sim.get("/v23.0/42", params={"fields": fields}, headers=TOKEN).json()["error"]["code"]
        == 100
    )
    assert (
        sim.get(f"/v23.0/{FALLBACK_WABA}", params={"fields": fields}).json()["error"]["code"] == 190
    )


def test_invalid_admin_input_is_a_clear_422(sim: httpx.Client) -> None:
    response = sim.put("/_admin/faults", json={"http_5xx_rate": 2})
    assert response.status_code == 422
    assert response.json()["details"][0]["loc"] == ["http_5xx_rate"]


def test_template_lookup_lists_the_wabas_templates(sim: httpx.Client) -> None:
    got = sim.get(
        "/v23.0/102290129340398/message_templates", params={"name": "order_update"}, headers=TOKEN
    ).json()
    assert [(t["name"], t["category"], t["language"]) for t in got["data"]] == [
        ("order_update", "UTILITY", "en_US")
    ]
    assert sim.get("/v23.0/102290129340398/message_templates", headers=TOKEN).json()["data"]
