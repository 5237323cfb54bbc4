"""Both HTTP clients against the simulator: the same results, and the same answer to
"could the request have reached the API?" when a call fails.

Only a failed connect may be retried; a reset or a timeout after the request left is
ambiguous (the API may hold the message), so it must come back as ``Unknown``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.common.ports import free_port
from services.sender.graph import GraphClient
from services.sender.outcomes import Delivered, Fail, Retry, Unknown
from services.sender.settings import SenderSettings
from tests.simulator.support import NUMBER, ONBOARDED_WABA

CLIENTS = ["aiohttp", "httpx"]


def body(to: str, template: str = "spring_sale") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {"name": template, "language": {"code": "en_US"}},
    }


def settings(url: str, client: str, **overrides: Any) -> SenderSettings:
    return SenderSettings.model_validate(
        {
            "meta_base_url": url,
            "meta_access_token": SecretStr("sim-token"),
            "sender_http_client": client,
            **overrides,
        }
    )


def sent_to(admin: httpx.Client) -> list[str]:
    return [m["to"] for m in admin.get("/_admin/messages").json()["messages"]]


@pytest.mark.parametrize("client", CLIENTS)
async def test_accepted_and_refused_answers(
    client: str, simulator: tuple[str, httpx.Client]
) -> None:
    url, admin = simulator
    graph = GraphClient(settings(url, client))
    try:
        accepted, _ = await graph.send("meta", NUMBER, "marketing_messages", body("447911123401"))
        unknown_template = body("447911123409", "no_such_template")
        refused, _ = await graph.send("meta", NUMBER, "marketing_messages", unknown_template)
        template = await graph.template(ONBOARDED_WABA, "spring_sale", "en_US")
    finally:
        await graph.aclose()
    assert isinstance(accepted, Delivered)
    assert accepted.wamid.startswith("wamid.")
    assert isinstance(refused, Fail), refused
    assert refused.error.code is not None
    assert refused.error.http_status is not None
    assert 400 <= refused.error.http_status < 500
    assert template is not None
    assert template["category"] == "MARKETING"
    assert sent_to(admin) == ["447911123401"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_refused_connection_was_not_sent_and_is_retried(client: str) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    graph = GraphClient(settings(nobody, client, sender_connect_timeout_s=2))
    try:
        result, _ = await graph.send("meta", NUMBER, "marketing_messages", body("447911123402"))
    finally:
        await graph.aclose()
    assert isinstance(result, Retry), result
    assert "before the request was sent" in (result.error.message or "")


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_reset_after_sending_is_ambiguous(
    client: str, simulator: tuple[str, httpx.Client]
) -> None:
    url, admin = simulator
    admin.put("/_admin/faults", json={"reset_rate": 1.0}).raise_for_status()
    graph = GraphClient(settings(url, client))
    try:
        result, _ = await graph.send("meta", NUMBER, "marketing_messages", body("447911123403"))
    finally:
        await graph.aclose()
    assert isinstance(result, Unknown), result
    assert result.cause == "connection_lost_after_send"


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_timeout_after_the_api_accepted_is_ambiguous(
    client: str, simulator: tuple[str, httpx.Client]
) -> None:
    url, admin = simulator
    admin.put(
        "/_admin/faults", json={"timeout_after_accept_rate": 1.0, "timeout_hang_s": 1.5}
    ).raise_for_status()
    graph = GraphClient(settings(url, client, sender_read_timeout_s=0.3))
    try:
        result, _ = await graph.send("meta", NUMBER, "marketing_messages", body("447911123404"))
    finally:
        await graph.aclose()
    assert isinstance(result, Unknown), result
    assert result.cause == "read_timeout_after_send"
    assert sent_to(admin) == ["447911123404"], "the client timed out, yet the API has it"
