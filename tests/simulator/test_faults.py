"""Fault injection from the admin API: errors, 5xx bursts, resets, latency, ambiguous timeouts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from services.common.ports import free_port
from tests.simulator.support import NUMBER, UK_USER, WebhookSink, statuses
from tests.simulator.test_rules_over_http import TOKEN, template_body

PATH = f"/v23.0/{NUMBER}/marketing_messages"


def _to(i: int) -> dict[str, object]:
    return template_body("spring_sale", to=f"4479111234{i:02d}")


@pytest.mark.parametrize(("code", "http"), [(131000, 500), (130429, 400), (133004, 503), (1, 500)])
def test_error_rate_per_code(sim: httpx.Client, code: int, http: int) -> None:
    sim.put("/_admin/faults", json={"error_rates": {str(code): 1.0}}).raise_for_status()
    response = sim.post(PATH, json=_to(0), headers=TOKEN)
    assert response.status_code == http
    assert response.json()["error"]["code"] == code
    assert sim.get("/_admin/messages").json()["messages"] == [], "a failed call sends nothing"


def test_error_rate_is_a_probability(sim: httpx.Client) -> None:
    sim.put("/_admin/faults", json={"error_rates": {"131000": 0.3}}).raise_for_status()
    outcomes = [sim.post(PATH, json=_to(i % 90), headers=TOKEN).status_code for i in range(200)]
    failed = outcomes.count(500)
    # 200 draws at p=0.3 (seeded): far from both "never" and "always".
    assert 30 < failed < 100, failed


def test_5xx_burst_then_recovery(sim: httpx.Client) -> None:
    sim.put("/_admin/faults", json={"burst_5xx": 3}).raise_for_status()
    codes = [sim.post(PATH, json=_to(i), headers=TOKEN).status_code for i in range(5)]
    assert codes == [503, 503, 503, 200, 200]


def test_connection_reset(sim: httpx.Client) -> None:
    sim.put("/_admin/faults", json={"reset_rate": 1.0}).raise_for_status()
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        sim.post(PATH, json=_to(0), headers=TOKEN)
    sim.put("/_admin/faults", json={}).raise_for_status()
    assert sim.post(PATH, json=_to(1), headers=TOKEN).status_code == 200


def test_timeout_after_accept_is_the_ambiguous_case(
    sim: httpx.Client, sink: tuple[WebhookSink, str]
) -> None:
    sim.put(
        "/_admin/faults", json={"timeout_after_accept_rate": 1.0, "timeout_hang_s": 1.5}
    ).raise_for_status()
    with pytest.raises(httpx.ReadTimeout):
        sim.post(PATH, json=template_body("spring_sale"), headers=TOKEN, timeout=0.3)
    # The client saw a timeout, yet Meta has the message and reports on it.
    (message,) = sim.get("/_admin/messages").json()["messages"]
    assert message["to"] == UK_USER
    received = sink[0].wait_for(lambda r: any(s["id"] == message["wamid"] for s in statuses(r)))
    assert any(s["status"] == "sent" for s in statuses(received))


def test_latency_is_added(sim: httpx.Client) -> None:
    sim.put(
        "/_admin/faults", json={"latency": {"distribution": "fixed", "ms": 150}}
    ).raise_for_status()
    started = time.perf_counter()
    sim.post(PATH, json=_to(0), headers=TOKEN).raise_for_status()
    assert time.perf_counter() - started >= 0.15


def test_calls_and_counters_record_every_outcome(sim: httpx.Client) -> None:
    sim.put("/_admin/faults", json={"burst_5xx": 1}).raise_for_status()
    sim.post(PATH, json=_to(0), headers=TOKEN)
    sim.post(PATH, json=_to(1), headers=TOKEN)
    sim.post(PATH, json=template_body("order_update"), headers=TOKEN)
    calls = sim.get("/_admin/calls").json()
    assert [c["outcome"] for c in calls["calls"]] == ["fault_http", "accepted", "rejected"]
    assert [c["seq"] for c in calls["calls"]] == [1, 2, 3]
    counters = sim.get("/_admin/counters").json()["counters"]
    assert counters["calls.marketing_messages.accepted"] == 1
    assert counters["codes.100"] == 1
    page = sim.get("/_admin/calls", params={"after_seq": 1, "limit": 1}).json()["calls"]
    assert [c["seq"] for c in page] == [2]


async def test_many_resets_under_load_leave_the_server_answering(tmp_path: Path) -> None:
    """Regression: every reset used to log a traceback; with output to a pipe nobody read,
    the simulator blocked on a log line after a few dozen resets and stopped answering."""
    port = free_port()
    log = tmp_path / "simulator.log"
    proc = _simulator_process(port, log)
    try:
        limits = httpx.Limits(max_connections=100)
        retrying = httpx.AsyncHTTPTransport(retries=20, limits=limits)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10, transport=retrying) as client:
            await client.get("/_admin/health")  # connect retries until it listens
            await client.put("/_admin/faults", json={"reset_rate": 0.1})

            async def one(i: int) -> str:
                try:
                    response = await client.post(
                        "/v23.0/106540352242922/marketing_messages",
                        headers={"Authorization": "Bearer sim-token"},
                        json={"messaging_product": "whatsapp", "to": f"4479{i:08d}"},
                    )
                    return str(response.status_code)
                except httpx.TransportError as exc:
                    return type(exc).__name__

            outcomes = Counter(await asyncio.gather(*(one(i) for i in range(600))))
            health = await client.get("/_admin/health")
        assert health.status_code == 200
        assert "ReadTimeout" not in outcomes, outcomes
        assert outcomes["ReadError"] > 20, "the resets really happened"
        assert "Traceback" not in log.read_text(), "a simulated reset is not an error"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _simulator_process(port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "simulator", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
