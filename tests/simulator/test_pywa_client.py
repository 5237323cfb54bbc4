"""A WhatsApp client nobody here wrote (pywa) talks to the simulator as to Meta."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pywa.client import WhatsApp
from pywa.errors import WhatsAppError
from pywa.types.templates import TemplateLanguage

from services.simulator.server import SimulatorThread
from services.simulator.settings import SimulatorSettings
from tests.simulator.support import NUMBER, UK_USER, make_world


@pytest.fixture
def wa() -> Iterator[WhatsApp]:
    with SimulatorThread(SimulatorSettings(), make_world()) as server, httpx.Client() as session:
        client = WhatsApp(phone_id=NUMBER, token="sim-token", session=session, api_version="23.0")
        # pywa targets graph.facebook.com; point its session at the simulator instead.
        session.base_url = httpx.URL(f"{server.base_url}/v23.0")
        yield client


def test_pywa_sends_a_marketing_template_through_mm_api(wa: WhatsApp) -> None:
    sent = wa.send_template(
        to=UK_USER,
        name="spring_sale",
        language=TemplateLanguage.ENGLISH_US,
        use_mm_lite_api=True,
        message_activity_sharing=True,
        tracker="mmbus:6f1c1a52",
    )
    assert sent.id.startswith("wamid.")
    assert sent.input == UK_USER
    assert sent.from_phone_id == NUMBER
    assert sent.status is not None
    assert sent.status.value == "accepted"


def test_pywa_reads_a_graph_error(wa: WhatsApp) -> None:
    with pytest.raises(WhatsAppError) as caught:
        wa.send_template(to=UK_USER, name="max_price_promo", language=TemplateLanguage.ENGLISH_US)
    assert caught.value.code == 131061
    assert "bid_spec" in caught.value.message
