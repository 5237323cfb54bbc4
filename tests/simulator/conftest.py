from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from services.common.serving import ServeInThread
from services.simulator.server import SimulatorThread
from services.simulator.settings import SimulatorSettings
from tests.simulator.support import WebhookSink, make_world

APP_SECRET = "test-app-secret"


@pytest.fixture
def sink() -> Iterator[tuple[WebhookSink, str]]:
    receiver = WebhookSink()
    with ServeInThread(receiver.app()) as server:
        yield receiver, f"{server.base_url}/webhooks"


@pytest.fixture
def sim(sink: tuple[WebhookSink, str]) -> Iterator[httpx.Client]:
    """A client on a fresh simulator whose webhooks go to the sink."""
    settings = SimulatorSettings(
        webhook_url=sink[1],
        app_secret=SecretStr(APP_SECRET),
        d360_webhook_secret=SecretStr("d360-hook-secret"),
    )
    with (
        SimulatorThread(settings, make_world()) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as client,
    ):
        # Tests ask for each quirk explicitly; by default no duplicates, no reordering.
        client.put(
            "/_admin/behaviour",
            json={
                "duplicate_probability": 0,
                "out_of_order_probability": 0,
                "delivered_probability": 1,
                "read_probability": 1,
                "click_probability": 1,
                "user_action_probability": 0,
                "webhook_retry_base_ms": 20,
                "webhook_retry_max_ms": 100,
            },
        ).raise_for_status()
        yield client
