"""The simulator the sender's tests call, in a thread of the test process.

``test_sender_guarantees`` overrides it with a simulator in a process of its own,
whose clock must see calls as they arrive.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from services.simulator.server import SimulatorThread
from services.simulator.settings import SimulatorSettings
from tests.simulator.support import make_world


@pytest.fixture
def simulator() -> Iterator[tuple[str, httpx.Client]]:
    """Its base URL and an admin client; no pair limit, so tests may repeat recipients."""
    with (
        SimulatorThread(SimulatorSettings(), make_world(pair_limit_s=0.0)) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as admin,
    ):
        yield server.base_url, admin
