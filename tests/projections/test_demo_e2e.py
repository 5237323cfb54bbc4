"""The main job end to end on the real broker: the funnel matches what the simulator did."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from services.campaign_csv import read_commands
from services.common.settings import CommonSettings
from services.demo import DEMO_CSV, DemoStack
from tests.observability.support import exposed, expressions, referenced, run_promtool

CAMPAIGN = "e2e-campaign"
RANK = {"sent": 1, "delivered": 2, "read": 3}


def send_csv(settings: CommonSettings) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMBUS_")}
    env.update(
        {
            "MMBUS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "MMBUS_TOPIC_PREFIX": settings.topic_prefix,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "send-csv", str(DEMO_CSV), "--campaign", CAMPAIGN],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def simulator_truth(sim: httpx.Client) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]]]:
    """Each accepted message, and the webhook kinds the simulator delivered (200) per subject."""
    messages = {m["wamid"]: m for m in sim.get("/_admin/messages").json()["messages"]}
    delivered: dict[str, set[str]] = defaultdict(set)
    for d in sim.get("/_admin/webhooks").json()["deliveries"]:
        if d["delivered"] and d["subject"]:
            delivered[d["subject"]].add(d["kind"])
    return messages, delivered


def expected_state(kinds: set[str]) -> str:
    if "failed" in kinds:
        return "failed"
    reached = [k for k in kinds if k in RANK]
    return max(reached, key=RANK.__getitem__) if reached else "accepted"


def check_metrics_of_running_services(stack: DemoStack) -> None:
    """Each service's /metrics passes promtool, and the alert rules and dashboards in
    deploy/ query only metrics that the running services expose."""
    pages = {}
    with httpx.Client(timeout=10) as client:
        for name in ("sender", "ingest", "projector"):
            page = client.get(f"http://127.0.0.1:{stack.ports[name]}/metrics")
            assert page.status_code == 200, name
            run_promtool("check", "metrics", stdin=page.text)
            pages[name] = exposed(page.text)
            assert "process_cpu_seconds_total" in pages[name], f"{name} exposes process_*"
    offered = set().union(*pages.values())
    for where, expr in expressions().items():
        missing = referenced(expr) - offered
        assert not missing, f"{where} queries metrics no service exposes: {sorted(missing)}"


def test_demo_campaign_funnel_matches_the_simulator_message_by_message(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    commands, errors = read_commands(DEMO_CSV, campaign=CAMPAIGN)
    assert not errors
    behaviour = {"duplicate_probability": 0.3, "out_of_order_probability": 0.3}
    with DemoStack(kafka_settings, tmp_path / "demo", simulator_behaviour=behaviour) as stack:
        published = send_csv(kafka_settings)
        assert published.returncode == 0, published.stderr
        assert f"published {len(commands)} command(s)" in published.stdout
        first = stack.settle(CAMPAIGN, len(commands), timeout_s=180)
        # The same file again: the same command ids, nothing sent twice.
        again = send_csv(kafka_settings)
        assert again.returncode == 0, again.stderr
        final = stack.settle(CAMPAIGN, len(commands), timeout_s=120)
        check_metrics_of_running_services(stack)
        with httpx.Client(base_url=stack.simulator_url, timeout=10) as sim:
            messages, delivered = simulator_truth(sim)
        with httpx.Client(base_url=stack.query_url, timeout=10) as api:
            projected = []
            after = None
            while True:
                params: dict[str, str | int] = {
                    "campaign_id": CAMPAIGN,
                    "limit": 50,
                    **({"after": after} if after else {}),
                }
                page = api.get("/v1/messages", params=params).json()
                projected += page["items"]
                if not (after := page["next"]):
                    break
            wabas = {w["waba_id"]: w for w in api.get("/v1/wabas").json()["items"]}

    assert first["funnel"] == final["funnel"], "re-running the file changed nothing"
    assert len(projected) == len(commands)
    by_wamid = {m["wamid"]: m for m in projected if m["wamid"]}
    assert set(by_wamid) == set(messages), "every message the simulator accepted, and no other"
    for wamid, truth in messages.items():
        mine = by_wamid[wamid]
        assert mine["endpoint"] == truth["endpoint"], wamid
        assert mine["state"] == expected_state(delivered.get(wamid, set())), wamid
        kinds = delivered.get(wamid, set())
        if kinds & {"sent", "delivered"}:  # the simulator prices those (not read, not failed)
            assert mine["pricing"]["category"] == truth["pricing_category"], (wamid, kinds)
        else:
            assert mine["pricing"] is None, (wamid, kinds)
        assert mine["fell_back"] == (
            truth["endpoint"] == "marketing_messages" and truth["pricing_category"] == "marketing"
        )
    clicks = {s for s, kinds in delivered.items() if "click" in kinds}
    funnel = final["funnel"]
    assert funnel["accepted"] == len(messages)
    assert funnel["read"] == sum(1 for k in delivered.values() if "read" in k)
    assert funnel["clicked"] == len(clicks)
    assert funnel["suppressed"] == len(commands) - len(messages) - funnel["rejected"]
    assert funnel["fell_back"] == sum(
        1
        for m in messages.values()
        if m["endpoint"] == "marketing_messages" and m["pricing_category"] == "marketing"
    )
    assert wabas["102290129340398"]["status"] == "onboarded"
    assert wabas["203301230451409"]["status"] == "eligible"


def test_mmbus_run_sends_the_demo_campaign_and_prints_the_funnel(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    """The main job as `make run` starts it, stopping once the campaign has settled."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMBUS_")}
    env.update(
        {
            "MMBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
            "MMBUS_TOPIC_PREFIX": kafka_settings.topic_prefix,
            "MMBUS_PARTITIONS": str(kafka_settings.partitions),
        }
    )
    command = ["run", "--exit-when-settled", "--workdir", str(tmp_path / "run")]
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *command, "--campaign", "run-campaign"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "published 67 commands of campaign run-campaign" in out
    assert "campaign settled." in out
    assert "funnel: requested 67 > accepted" in out
    assert "WABA 102290129340398    onboarded" in out
    assert "WABA 203301230451409    eligible" in out
    assert "billable by category:" in out
